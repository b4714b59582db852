"""Hand-made scoring scenarios, and the service's paths they are run through to compare with the plain
implementation (:mod:`tests.plain_scores`): the pure core (``qc.thresholds`` + ``qc.scores``) and the stored results
(``flatqc.scoring.scored_rows`` as the QC job and ``flatqc process`` call it, then ``rescore_set``) on QC1 rows in a
real database."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, delete, insert, select

from flatqc.db import QC1_TABLES, reviews, scores, sets
from flatqc.lifecycle.reviews import decide
from flatqc.scoring import Rescored, rescore_set, scored_rows
from flatqc.threshold_files import ALL_PARAMETERS, Thresholds, load_thresholds, scored_parameters
from qc.profiles import PROFILES
from qc.scores import History, score_row
from qc.thresholds import built_in_thresholds, file_in_force, parse_threshold_file
from tests.plain_scores import PARAMETERS, PlainRow, file_for_night, plain_scores, plain_worst, read_file, score_columns

CONFIGS = {name: profile.default_config for name, profile in PROFILES.items()}
ENGINES = {"sqlite": "module_sqlite_engine", "postgres": "module_pg_engine"}
"""The fixture of the database of each kind a module's tests share (each scenario empties the tables first)."""


@dataclass(frozen=True)
class Scenario:
    """Rows in the QC1 tables (the subject's and the rest, in any order), the threshold files of the folder and the
    review decisions made, oldest first; the set ``subject`` is the one scored."""

    rows: tuple[PlainRow, ...]
    subject: str
    files: Mapping[str, str] = field(default_factory=dict)
    decisions: tuple[tuple[str, str], ...] = ()

    def table_rows(self) -> list[PlainRow]:
        """The rows with the review decision in force applied."""
        last = dict(self.decisions)
        return [dataclasses.replace(r, rejected=last.get(r.set_id) == "rejected") for r in self.rows]

    def subject_rows(self) -> list[PlainRow]:
        return sorted((r for r in self.table_rows() if r.set_id == self.subject), key=lambda r: r.detector)

    def plain(self) -> dict[int, Scored]:
        """Per detector of the subject, its scores by the plain implementation."""
        files = [read_file(name, text) for name, text in self.files.items()]
        out = {}
        for row in self.subject_rows():
            file = file_for_night(files, row.night)
            found = plain_scores(row, file, self.table_rows())
            out[row.detector] = Scored(
                "built-in" if file is None else file.name, None if file is None else file.sha256,
                score_columns(found, parameters_of(row.profile)),
                sorted((s.parameter, s.kind, s.score, s.low, s.high, s.centre, s.spread, s.n_points) for s in found))
        return out


@dataclass(frozen=True)
class Scored:
    """One row's scores: the file used, the columns ``score_<parameter>`` and ``score``, and the details
    ``(parameter, kind, score, low, high, centre, spread, n_points)`` sorted."""

    thresholds_file: str
    thresholds_sha256: str | None
    columns: dict[str, str | None]
    details: list[tuple[Any, ...]]


def parameters_of(profile: str) -> tuple[str, ...]:
    """The scored parameters of ``profile``'s rows, as the contract lists them (checked against the service's)."""
    assert PARAMETERS[profile] == scored_parameters(PROFILES[profile])
    return PARAMETERS[profile]


def row_values(row: PlainRow) -> dict[str, float | None]:
    """Every scored parameter of the row's profile (absent = NULL)."""
    return {p: row.values.get(p) for p in parameters_of(row.profile)}


# The pure core ------------------------------------------------------------------------------------------------------

def core_scored(scenario: Scenario) -> dict[int, Scored]:
    """``score_row`` against ``file_in_force``, with the history the database would hand over: the rows of the
    same profile, setting and detector not failed, rejected or superseded (window and the row itself left to it)."""
    files = [parse_threshold_file(n, t, ALL_PARAMETERS, PROFILES) for n, t in scenario.files.items()]
    built_in = built_in_thresholds(CONFIGS)
    out = {}
    for row in scenario.subject_rows():
        file = file_in_force(files, date.fromisoformat(row.night), built_in)
        good = [r for r in scenario.table_rows()
                if (r.profile, r.setting_key, r.detector) == (row.profile, row.setting_key, row.detector)
                and r.verdict != "failed" and not r.rejected and not r.superseded and r.mjd is not None]
        history = History(np.array([r.mjd for r in good], dtype=float),
                          {p: np.array([row_values(r)[p] for r in good], dtype=float) for p in file.parameters})
        got = score_row(row_values(row), row.detector, row.mjd, row.profile, row.setting_key, file, history)
        out[row.detector] = Scored(
            file.name, file.sha256,
            got.columns(parameters_of(row.profile)),
            sorted((s.parameter, s.kind.value, None if s.score is None else s.score.value, s.low, s.high, s.centre,
                    s.spread, s.n_points) for s in got.scores))
    return out


# The stored results -------------------------------------------------------------------------------------------------

def qc1_row(row: PlainRow) -> dict[str, Any]:
    """A QC1 row as the service stores it (keys, verdict, values; the rest left NULL)."""
    return {"set_id": row.set_id, "version": version_of(row), "night": row.night, "mjd_obs": row.mjd,
            "setting_key": row.setting_key, "n_raw": 1, "raw_type": "FLT_WIN", "detector": row.detector,
            "certified": row.verdict != "failed", "verdict": row.verdict,
            "master_file": f"/nowhere/{row.set_id}.fits"} | row_values(row)


def version_of(row: PlainRow) -> str:
    return f"{row.set_id}-old" if row.superseded else f"{row.set_id}-v"


def fill(engine: Engine, scenario: Scenario, rows: list[PlainRow]) -> None:
    """Empty the tables, then insert ``rows`` (their superseded versions noted in ``sets``) and the decisions on
    their sets."""
    with engine.begin() as conn:
        for table in (*QC1_TABLES.values(), sets, reviews, scores):
            conn.execute(delete(table))
        for profile in PROFILES.values():
            mine = [qc1_row(r) for r in rows if r.profile == profile.name]
            if mine:
                conn.execute(insert(QC1_TABLES[profile.table]), mine)
        superseded = {version_of(r): r.set_id for r in rows if r.superseded}
        if superseded:
            conn.execute(insert(sets), [{"set_id": s, "version": v, "state": "superseded"}
                                        for v, s in superseded.items()])
        present = {r.set_id for r in rows}
        for set_id, decision in scenario.decisions:
            if set_id in present:
                decide(conn, [set_id], decision, "tester", "scenario")


def read_back(engine: Engine, scenario: Scenario) -> dict[int, Scored]:
    """The subject's stored score columns and ``scores`` rows."""
    profile = PROFILES[scenario.subject_rows()[0].profile]
    return stored_of(engine, profile.name, scenario.subject)


def stored_of(engine: Engine, profile_name: str, set_id: str) -> dict[int, Scored]:
    """Per detector, the stored score columns and ``scores`` rows of ``set_id``."""
    table = QC1_TABLES[PROFILES[profile_name].table]
    names = parameters_of(profile_name)
    with engine.connect() as conn:
        rows = conn.execute(select(table).where(table.c.set_id == set_id)).mappings().all()
        details = conn.execute(select(scores).where(scores.c.set_id == set_id)).mappings().all()
    assert all(d["qc1_table"] == table.name for d in details)
    return {r["detector"]: Scored(
        r["thresholds_file"], r["thresholds_sha256"], {k: r[k] for k in (*(f"score_{p}" for p in names), "score")},
        sorted((d["parameter"], d["kind"], d["score"], d["low"], d["high"], d["centre"], d["spread"], d["n_points"])
               for d in details if d["detector"] == r["detector"])) for r in rows}


def stored_scored(scenario: Scenario, engine: Engine,
                  folder: Path) -> tuple[dict[int, Scored], dict[int, Scored], Rescored | None]:
    """Through the database of ``engine`` (emptied first), with the threshold files in a new folder under
    ``folder``: the subject scored by ``scored_rows`` before its rows are written (as ``store_qc1`` does), then
    scored again by ``rescore_set`` with its rows in the table; both as stored, and the ``Rescored`` record."""
    folder.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=folder))
    for name, text in scenario.files.items():
        (folder / name).write_bytes(text.encode())
    thresholds = load_thresholds(folder, CONFIGS)
    fill(engine, scenario, [r for r in scenario.rows if r.set_id != scenario.subject])
    store(engine, thresholds, scenario.subject_rows())
    first = read_back(engine, scenario)
    table = QC1_TABLES[PROFILES[scenario.subject_rows()[0].profile].table]
    rescored = rescore_set(engine, thresholds, table, scenario.subject)
    return first, read_back(engine, scenario), rescored


def store(engine: Engine, thresholds: Thresholds, rows: list[PlainRow]) -> None:
    """Score one set's new rows with ``scored_rows`` against the file in force for their night and write them,
    as ``store_qc1`` does."""
    profile = PROFILES[rows[0].profile]
    with engine.begin() as conn:
        written = scored_rows(conn, profile, [qc1_row(r) for r in rows], thresholds.for_night(rows[0].night))
        conn.execute(insert(QC1_TABLES[profile.table]), written)


def set_score(scored: Mapping[int, Scored]) -> str | None:
    """A set's score: the worst of its rows' (contract 9, roll-up)."""
    return plain_worst(s.columns["score"] for s in scored.values())
