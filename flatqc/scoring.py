"""Scores of QC1 rows in the database (contract 9): the history of earlier good rows, and the score columns and
``scores`` rows written with a set's QC1 rows (QC job and ``flatqc process`` alike) or again by ``flatqc rescore``.

The science (what a score is) is :mod:`qc.scores` and :mod:`qc.thresholds`; this module reads and writes. The
threshold files of ``FLATQC_THRESHOLDS_DIR`` are read by :mod:`flatqc.threshold_files`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from flatqc.db import QC1_TABLES, scores
from flatqc.last_good import good_set_rows
from flatqc.threshold_files import Thresholds, scored_parameters
from qc.profiles import InstrumentProfile, profile_for_table
from qc.scores import EMPTY_HISTORY, History, RowScores, score_row, worst_text
from qc.thresholds import ThresholdFile, ThresholdKind

# History --------------------------------------------------------------------------------------------------------------

def read_history(conn: Connection, table: Table, setting_key: str, before: float, days: float, set_id: str,
                 parameters: Sequence[str]) -> dict[int, History]:
    """Per detector, the good rows (:func:`flatqc.last_good.good_set_rows`) of ``setting_key`` with ``MJD-OBS`` in
    ``[before - days, before)``, other than ``set_id``'s: one indexed query."""
    query = (select(table.c.detector, table.c.mjd_obs, *(table.c[p] for p in parameters))
             .where(table.c.setting_key == setting_key, table.c.mjd_obs >= before - days,
                    table.c.mjd_obs < before, table.c.set_id != set_id, good_set_rows(table))
             .order_by(table.c.detector, table.c.mjd_obs))
    rows = conn.execute(query).all()
    history: dict[int, History] = {}
    for detector in sorted({r[0] for r in rows}):
        block = np.array([r[1:] for r in rows if r[0] == detector], dtype=float)  # None -> NaN
        history[detector] = History(block[:, 0], {p: block[:, i] for i, p in enumerate(parameters, start=1)})
    return history


def longest_window(thresholds: ThresholdFile) -> float:
    """The longest statistical window of a file [d] (0: it has no statistical threshold)."""
    return max((t.window_days for t in thresholds.thresholds if t.kind == ThresholdKind.STATISTICAL), default=0.0)


# Scoring a set ----------------------------------------------------------------------------------------------------

def score_set_rows(conn: Connection, profile: InstrumentProfile, rows: Sequence[Mapping[str, Any]],
                   thresholds: ThresholdFile) -> list[RowScores]:
    """The scores of one set's QC1 rows (dicts with ``set_id``, ``setting_key``, ``mjd_obs``, ``detector`` and the
    QC1 values), against ``thresholds`` and the history the database holds now."""
    if not rows:
        return []
    first = rows[0]
    parameters = tuple(p for p in scored_parameters(profile) if p in thresholds.parameters)
    window = longest_window(thresholds)
    history: dict[int, History] = {}
    if window and first["mjd_obs"] is not None and parameters:
        history = read_history(conn, QC1_TABLES[profile.table], first["setting_key"], first["mjd_obs"], window,
                               first["set_id"], parameters)
    return [score_row(row, row["detector"], row["mjd_obs"], profile.name, row["setting_key"], thresholds,
                      history.get(row["detector"], EMPTY_HISTORY)) for row in rows]


def score_columns(profile: InstrumentProfile, row_scores: RowScores, thresholds: ThresholdFile) -> dict[str, Any]:
    """The score columns of one QC1 row (contract 9)."""
    return row_scores.columns(scored_parameters(profile)) | {"thresholds_file": thresholds.name,
                                                            "thresholds_sha256": thresholds.sha256}


def replace_score_details(conn: Connection, profile: InstrumentProfile, set_id: str,
                          row_scores: Sequence[RowScores]) -> None:
    """Store what each score of ``set_id`` was scored against, replacing what was stored before."""
    conn.execute(delete(scores).where(scores.c.set_id == set_id))
    details = [asdict(s) | {"qc1_table": profile.table, "set_id": set_id} for r in row_scores for s in r.scores]
    if details:
        conn.execute(insert(scores), details)


def scored_rows(conn: Connection, profile: InstrumentProfile, rows: Sequence[dict[str, Any]],
                thresholds: ThresholdFile) -> list[dict[str, Any]]:
    """``rows`` (one set's QC1 rows, about to be written) with their score columns; their details are stored."""
    row_scores = score_set_rows(conn, profile, rows, thresholds)
    if rows:
        replace_score_details(conn, profile, rows[0]["set_id"], row_scores)
    return [row | score_columns(profile, s, thresholds) for row, s in zip(rows, row_scores, strict=True)]


# Re-scoring --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rescored:
    """One set scored again: its night, profile, and the set's score before and after (worst over its rows)."""

    set_id: str
    night: str
    profile: str
    before: str | None
    after: str | None
    thresholds_file: str
    changed: bool
    """Whether any score column of its rows changed (a parameter's score, the file used), the set's score or not."""


def sets_to_rescore(engine: Engine, night_from: str, night_to: str) -> list[tuple[Table, str]]:
    """(QC1 table, set id) of every set of the nights ``night_from``..``night_to``, oldest ``MJD-OBS`` first."""
    found: list[tuple[float, Table, str]] = []
    with engine.connect() as conn:
        for table in QC1_TABLES.values():
            query = (select(func.min(table.c.mjd_obs), table.c.set_id)
                     .where(table.c.night >= night_from, table.c.night <= night_to).group_by(table.c.set_id))
            found += [(mjd if mjd is not None else -math.inf, table, set_id) for mjd, set_id in conn.execute(query)]
    return [(table, set_id) for _, table, set_id in sorted(found, key=lambda f: (f[0], f[2]))]


def rescore_set(engine: Engine, thresholds: Thresholds, table: Table, set_id: str) -> Rescored | None:
    """Score one set again (one transaction) against the file in force for its night and the history the
    database holds now; None if it has no rows any more. Scoring the sets of nights oldest first
    (:func:`sets_to_rescore`) makes it idempotent, and history keeps its dated thresholds."""
    profile = profile_for_table(table.name)
    with engine.begin() as conn:
        rows = [dict(r) for r in conn.execute(select(table).where(table.c.set_id == set_id)
                                              .order_by(table.c.detector)).mappings()]
        if not rows:
            return None
        file = thresholds.for_night(rows[0]["night"])
        new = scored_rows(conn, profile, rows, file)
        columns = score_columns_of(profile)
        for row in new:
            conn.execute(update(table).where(table.c.id == row["id"]).values(**{k: row[k] for k in columns}))
    changed = any(old[k] != row[k] for old, row in zip(rows, new, strict=True) for k in columns)
    return Rescored(set_id, rows[0]["night"], profile.name, worst_text(r["score"] for r in rows),
                    worst_text(r["score"] for r in new), file.name, changed)


def score_columns_of(profile: InstrumentProfile) -> tuple[str, ...]:
    """Names of the score columns of ``profile``'s QC1 table."""
    return (*(f"score_{p}" for p in scored_parameters(profile)), "score", "thresholds_file", "thresholds_sha256")


