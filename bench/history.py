"""A generated QC1 history (years of nightly sets) for the dashboard benchmarks and the trend tests.

Rows go straight into ``sets`` and ``crires_flat`` (no FITS files): values scatter around the contract's typical
healthy figures per setting, with about one outlier in fifty, so the trend pages have something to mark. On request
the rows are scored as the service scores them (contract 9: :func:`qc.scores.score_row` over the earlier good rows,
in bulk instead of one query per set), with their ``scores`` rows, and a few sets are reviewed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from astropy.time import Time
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from flatqc.db import crires_flat, scores, sets
from flatqc.last_good import GOOD_VERDICTS
from flatqc.lifecycle import reviews
from flatqc.scoring import longest_window, score_columns
from flatqc.threshold_files import Thresholds, scored_parameters
from qc.profiles import CRIRES
from qc.records import QC1_NAMES
from qc.scores import History, score_row

TYPICAL = {
    "1090.400_25.000_Halogen": (517.0, 0.091),
    "3218.600_25.000_Halogen": (255.0, 0.125),
    "4092.900_25.000_Halogen": (400.0, 0.078),
    "2199.100_15.000_Halogen": (400.0, 0.090),
    "2199.100_15.000_Emitter": (300.0, 0.100),
}
"""Setting key -> (mean_flux [ADU/s], rms_master) around which the history scatters (contract 7)."""
REJECTED_EVERY = 500
"""With ``reviewed``: one set in this many (the 250th, 750th, ...) is rejected in review."""
REVIEWER = "bench history"


@dataclass(frozen=True)
class GeneratedHistory:
    """The rows of a generated history, ready to be inserted into any number of databases."""

    set_rows: list[dict[str, Any]]
    qc1_rows: list[dict[str, Any]]
    score_rows: list[dict[str, Any]]
    """What each score was scored against (empty: not scored)."""
    rejected: list[str]
    """Sets to reject in review."""
    accepted: list[str]
    """Sets to accept in review."""
    decided_at: datetime


def write_history(engine: Engine, n_sets: int, first_night: str = "2006-04-01", seed: int = 1,
                  sets_per_night: int = 3, n_detectors: int = 4, thresholds: Thresholds | None = None,
                  reviewed: bool = False) -> int:
    """Insert a generated history (:func:`generate_history`, same arguments); returns the number of QC1 rows."""
    return insert_history(engine, generate_history(n_sets, first_night, seed, sets_per_night, n_detectors,
                                                   thresholds, reviewed))


def insert_history(engine: Engine, history: GeneratedHistory) -> int:
    """Insert ``history`` in one transaction (its review decisions through :mod:`flatqc.lifecycle.reviews`);
    returns the number of QC1 rows written."""
    with engine.begin() as conn:
        conn.execute(insert(sets), history.set_rows)
        conn.execute(insert(crires_flat), history.qc1_rows)
        if history.score_rows:
            conn.execute(insert(scores), history.score_rows)
        if history.rejected:
            reviews.decide(conn, history.rejected, reviews.Decision.REJECTED, REVIEWER, "lamp flickered",
                           history.decided_at)
        if history.accepted:
            reviews.decide(conn, history.accepted, reviews.Decision.ACCEPTED, REVIEWER, None, history.decided_at)
    return len(history.qc1_rows)


def generate_history(n_sets: int, first_night: str = "2006-04-01", seed: int = 1, sets_per_night: int = 3,
                     n_detectors: int = 4, thresholds: Thresholds | None = None,
                     reviewed: bool = False) -> GeneratedHistory:
    """``n_sets`` processed sets (``n_detectors`` QC1 rows each), ``sets_per_night`` a night from ``first_night``
    on, rotating through the setting keys of :data:`TYPICAL`.

    ``thresholds``: every row scored against the file in force for its night and the earlier good rows (score
    columns and ``scores`` rows). ``reviewed``: one set in :data:`REJECTED_EVERY` rejected in review (left out of
    the later rows' statistical history), the sets of the last night accepted.
    """
    rng = np.random.default_rng(seed)
    more = np.random.default_rng([seed, 1])  # the columns added later: the first ones keep their values
    keys = list(TYPICAL)
    start_mjd = Time(f"{first_night}T00:00:00").mjd
    set_rows, qc1_rows = [], []
    now = datetime.now(UTC).replace(tzinfo=None)
    for index in range(n_sets):
        night_index, slot = divmod(index, sets_per_night)
        mjd = start_mjd + night_index + 0.9 + 0.01 * slot
        night = Time(mjd - 0.5, format="mjd").iso[:10]
        key = keys[index % len(keys)]
        flux, rms = TYPICAL[key]
        set_id = f"h{index:011x}"
        outlier = rng.random() < 0.02
        verdict = "failed" if outlier else "not_assessable"
        set_rows.append({"set_id": set_id, "version": f"history-{index}", "night": night, "profile": "crires",
                         "setting_key": key, "raw_type": "FLAT", "n_raw": 1, "state": "done", "verdict": verdict,
                         "attempts": 1, "created_at": now, "finished_at": now})
        cwlen, baffle, lamp = key.split("_")
        for det in range(1, n_detectors + 1):
            values: dict[str, Any] = dict.fromkeys(QC1_NAMES)
            values |= {"mean_flux": flux * (2.2 if outlier else 1.0) * (1 + 0.05 * rng.standard_normal()),
                       "rms_master": rms * (1 + 0.04 * rng.standard_normal()),
                       "badpix": int(rng.poisson(12)), "max_flux": 8000.0, "num_overexp": 0, "bpm_count": 12}
            values["mean_level"] = values["mean_flux"] * 10.0
            values |= {"median_snr": 370.0 * (1 + 0.03 * more.standard_normal()),
                       "ref_ratio_median": 1.0 + 1e-4 * more.standard_normal(),
                       "ref_ratio_std": 0.002 * (1 + 0.05 * more.standard_normal()),
                       "bpm_new": int(more.poisson(2)), "bpm_fixed": int(more.poisson(1))}
            qc1_rows.append({"set_id": set_id, "version": f"history-{index}", "night": night, "mjd_obs": mjd,
                             "setting_key": key, "cwlen": float(cwlen), "baffle_pos": float(baffle), "lamp": lamp,
                             "dit": 10.0, "ndit": 1, "n_raw": 1, "ny": 512, "window_starty": 1, "raw_type": "FLAT",
                             "detector": det, **values, "certified": not outlier, "verdict": verdict,
                             "master_file": f"history/{set_id}.fits",
                             "processed_at": now})
    rejected = [row["set_id"] for row in set_rows[REJECTED_EVERY // 2::REJECTED_EVERY]] if reviewed else []
    accepted = [row["set_id"] for row in set_rows if row["night"] == set_rows[-1]["night"]] if reviewed else []
    details = score_history(qc1_rows, thresholds, set(rejected)) if thresholds is not None else []
    return GeneratedHistory(set_rows, qc1_rows, details, rejected, accepted, now)


def score_history(qc1_rows: list[dict[str, Any]], thresholds: Thresholds, rejected: set[str]) -> list[dict[str, Any]]:
    """Add the score columns to each of ``qc1_rows`` (CRIRES rows of sets rejected in review: ``rejected``) and
    return their ``scores`` rows: each row scored against the file in force for its night and the good rows
    (:data:`GOOD_VERDICTS`, not rejected) of its setting and detector before it, as the QC job scores a set."""
    profile = CRIRES
    parameters = scored_parameters(profile)
    streams: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in qc1_rows:
        streams[(row["setting_key"], row["detector"])].append(row)
    details = []
    for (key, detector), rows in streams.items():
        rows.sort(key=lambda r: r["mjd_obs"])
        good = [r for r in rows if r["verdict"] in GOOD_VERDICTS and r["set_id"] not in rejected]
        mjd = np.array([r["mjd_obs"] for r in good], dtype=float)
        values = {p: np.array([r[p] for r in good], dtype=float) for p in parameters}  # None -> NaN
        for row in rows:
            file = thresholds.for_night(row["night"])
            t = row["mjd_obs"]
            low, high = np.searchsorted(mjd, [t - longest_window(file), t])  # [t - window, t): earlier rows only
            history = History(mjd[low:high], {p: column[low:high] for p, column in values.items()})
            row_scores = score_row(row, detector, t, profile.name, key, file, history)
            row |= score_columns(profile, row_scores, file)
            details += [vars(s) | {"qc1_table": profile.table, "set_id": row["set_id"]} for s in row_scores.scores]
    return details
