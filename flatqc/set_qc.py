"""Run one complete set: ``qc`` analysis, plots, cover sheet, then the QC1 rows and findings in one transaction.

Shared by ``flatqc process`` (no queue) and the rq job, so both produce identical rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from flatqc import __version__
from flatqc.db import QC1_TABLES, qc1_rows, replace_findings, replace_qc1_rows
from flatqc.files import path_text, sha256_file, shown
from flatqc.scoring import replace_score_details, scored_rows
from flatqc.settings import Settings
from flatqc.threshold_files import thresholds_of
from qc.analysis import analyse_set
from qc.cover import draw_cover
from qc.last_good import LastGoodSet
from qc.plots import draw_plots
from qc.profiles import profile_named
from qc.records import SetResult
from qc.sets import FlatSet
from qc.thresholds import ThresholdFileError

log = logging.getLogger(__name__)


@dataclass
class SetOutcome:
    """A computed set: its result (views dropped), where its pictures are, and its provenance."""

    result: SetResult
    plots: dict[str, Path]
    provenance: dict[str, Any]


def provenance_of(flatset: FlatSet, hashes: dict[Path, str] | None = None) -> dict[str, Any]:
    """File names and content hashes of master, BPM and raws (hashes computed unless given, e.g. by the ledger)."""
    hashes = hashes or {}

    def digest(path: Path) -> str:
        return hashes.get(path) or sha256_file(path)

    return {
        "master_file": path_text(flatset.master.path),
        "master_sha256": digest(flatset.master.path),
        "bpm_file": path_text(flatset.bpm.path),
        "bpm_sha256": digest(flatset.bpm.path),
        "raw_files": [path_text(r.path) for r in flatset.raws],
        "raw_sha256": [digest(r.path) for r in flatset.raws],
    }


def output_dir(settings: Settings, night: str, set_id: str) -> Path:
    """``$QC_OUTPUT/<DATE>/<set_id>/`` (design.md)."""
    return settings.qc_output / night / set_id


def analyse(flatset: FlatSet, settings: Settings, with_views: bool,
            last_good: LastGoodSet | None = None) -> SetResult:
    """QC1 records, certification and the comparison with ``last_good`` (:mod:`flatqc.last_good`) of a set (plus
    the display views the pictures need, if asked)."""
    profile = profile_named(flatset.profile)
    result = analyse_set(flatset, profile, settings.qc_config(profile.name), settings.qc_reference,
                         with_views=with_views, last_good=last_good)
    inputs = (flatset.master.path, flatset.bpm.path, *(raw.path for raw in flatset.raws))
    result.input_files = tuple(shown(path.name) for path in inputs)
    return result


def compute_qc(flatset: FlatSet, settings: Settings, hashes: dict[Path, str] | None = None,
               last_good: LastGoodSet | None = None) -> SetOutcome:
    """What the verdict needs and nothing more: QC1 records, certification, comparison with the last good set,
    provenance; no picture."""
    return SetOutcome(result=analyse(flatset, settings, False, last_good), plots={},
                      provenance=provenance_of(flatset, hashes))


def draw_pictures(result: SetResult, settings: Settings) -> dict[str, Path]:
    """flat1..flat6 and the cover sheet of an analysed set (with views) in ``$QC_OUTPUT/<DATE>/<set_id>/``."""
    out = output_dir(settings, result.night, result.set_id)
    out.mkdir(parents=True, exist_ok=True)
    pictures = draw_plots(result, settings.qc_config(result.profile))
    paths = {name: picture.canvas.save(out / f"{name}.png") for name, picture in pictures.items()}
    cover = draw_cover(result, {name: picture.canvas.image for name, picture in pictures.items()})
    paths["cover"] = cover.save(out / "cover.png")
    return paths


def compute_set(flatset: FlatSet, settings: Settings, hashes: dict[Path, str] | None = None,
                last_good: LastGoodSet | None = None) -> SetOutcome:
    """Analyse the set against ``last_good`` and draw its pictures in one go (``flatqc process``); touches no
    database."""
    result = analyse(flatset, settings, True, last_good)
    plots = draw_pictures(result, settings)
    result.views = []
    return SetOutcome(result=result, plots=plots, provenance=provenance_of(flatset, hashes))


def store_qc1(conn: Connection, flatset: FlatSet, outcome: SetOutcome, settings: Settings,
              version: str | None = None) -> int:
    """Replace the set's QC1 rows, scored against the threshold file in force for its night and the earlier good
    rows (contract 9), and store its findings (reasons, notes, trend-limit warnings) in the caller's transaction;
    returns the number of rows written. A broken threshold file costs the scores, never the rows: they are stored
    unscored (score columns and ``thresholds_file`` NULL, one log line naming the file's error) for ``flatqc
    rescore`` to score later."""
    profile = profile_named(flatset.profile)
    rows = qc1_rows(
        outcome.result,
        provenance=outcome.provenance | {"version": version},
        software_version=__version__,
        thresholds_version=settings.qc_config(profile.name).thresholds_version,
        setting_columns=profile.setting_row(dict(flatset.raws[0].setting_values)),
    )
    try:
        thresholds = thresholds_of(settings).for_night(flatset.night)
    except ThresholdFileError as exc:
        log.warning("set %s stored without scores (flatqc rescore scores it once the file is fixed): %s",
                    flatset.set_id, exc)
        replace_score_details(conn, profile, flatset.set_id, [])
    else:
        rows = scored_rows(conn, profile, rows, thresholds)
    replace_qc1_rows(conn, QC1_TABLES[profile.table], flatset.set_id, rows)
    replace_findings(conn, flatset.set_id, version, outcome.result.findings)
    return len(rows)
