"""Trend series read from a QC1 table with their scores and the bounds they were scored against (contract 9), shared
by the worker's HealthCheck reports and the dashboard."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from typing import Any

import numpy as np
from sqlalchemy import Float, Select, Table, and_, bindparam, func, select
from sqlalchemy.engine import Connection, Engine

from flatqc.db import scores
from qc.thresholds import ThresholdKind
from qc.trends import Bounds, TrendSeries

TREND_REPORTS: dict[str, tuple[str, ...]] = {
    "FLATSTAB": ("mean_flux", "rms_master"),
    "FLAT_IRHa": ("mean_flux",),
    "BADPIX": ("badpix",),
}
"""HealthCheck report -> the QC1 columns it plots (contract 7); FLAT_IRHa covers Halogen settings only."""
TREND_COLUMNS: tuple[str, ...] = tuple(sorted({c for columns in TREND_REPORTS.values() for c in columns}))
"""Every QC1 column some report plots."""

AXIS_LABELS: dict[str, str] = {
    "mean_flux": "mean_flux [ADU/s]",
    "rms_master": "rms_master [normalised master]",
    "badpix": "badpix [pixels]",
}
"""The y-axis label (with unit) of each trend column."""
COUNTS = ("badpix",)
"""Trend columns that count pixels: whole-number ticks."""


@dataclass(frozen=True)
class SetSeries(TrendSeries):
    """A trend series that knows the set of each point (``set_ids[i]`` for ``mjd[i]``), so points can link to it."""

    set_ids: tuple[str, ...] = ()


def report_png(report: str, key: str, column: str) -> str:
    """File name of a report's PNG for one setting key: ``<report>_<key>.png``, with ``_<column>`` for a report
    of several columns (``FLATSTAB_<key>_mean_flux.png``)."""
    stem = f"{report}_{safe_name(key)}"
    return f"{stem}_{column}.png" if len(TREND_REPORTS[report]) > 1 else f"{stem}.png"


def safe_name(key: str) -> str:
    """A setting key as a file-name part (only letters, digits, ``.``, ``_`` and ``-``)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in key)


def report_applies(report: str, key: str) -> bool:
    """Whether ``report`` has a plot for setting ``key`` (FLAT_IRHa: Halogen lamp only)."""
    return report != "FLAT_IRHa" or key.endswith("_Halogen")


def newest_per_key(conn: Connection, table: Table) -> dict[str, float | None]:
    """Every setting key that has QC1 rows (sorted) and its newest ``MJD-OBS`` [d] (None: no row has one).

    A loose scan of the index ``ix_<table>_key_mjd``: one index seek per key, so ten years of rows cost no more than
    one month of them.
    """
    return {key: newest for key, newest in conn.execute(_newest_per_key_query(table))}


@lru_cache(maxsize=8)
def _newest_per_key_query(table: Table) -> Select[Any]:
    keys = select(func.min(table.c.setting_key).label("key")).cte("keys", recursive=True)
    following = select(func.min(table.c.setting_key)).where(table.c.setting_key > keys.c.key).scalar_subquery()
    keys = keys.union_all(select(following).where(keys.c.key.is_not(None)))
    newest = select(func.max(table.c.mjd_obs)).where(table.c.setting_key == keys.c.key).scalar_subquery()
    return select(keys.c.key, newest).where(keys.c.key.is_not(None)).order_by(keys.c.key)


def setting_keys(engine: Engine, table: Table) -> list[str]:
    """Every setting key that has QC1 rows, sorted."""
    with engine.connect() as conn:
        return list(newest_per_key(conn, table))


def load_trends(engine: Engine, table: Table, columns: Sequence[str], key: str | None = None,
                days: float | None = None) -> dict[str, dict[str, list[SetSeries]]]:
    """``{setting key: {column: [one series per detector]}}`` in time order (MJD-OBS [d]), with the set, the score
    (``score_<column>``) and the bounds scored against (``scores`` rows: the statistical warning band and centre,
    the fixed thresholds) of each point; two queries, however many points.

    ``key`` limits to one setting; ``days`` to the last ``days`` days before the newest row of the table (so a
    history that ended years ago still shows its last season), read through ``ix_<table>_key_mjd``. NULL values and
    missing bounds become NaN.
    """
    columns = tuple(columns)
    with engine.connect() as conn:
        newest = newest_per_key(conn, table)
        known = [mjd for mjd in newest.values() if mjd is not None]
        window = {"keys": [key] if key is not None else list(newest),
                  "since": max(known) - days if days is not None and known else -math.inf}
        rows = conn.execute(rows_query(table, columns), window).all()
        window_sets = sorted({r[2] for r in rows})
        scored = [s for chunk in range(0, len(window_sets), SET_IDS_PER_QUERY)
                  for s in conn.execute(bounds_query(table, columns),
                                        {"set_ids": window_sets[chunk:chunk + SET_IDS_PER_QUERY]}).all()]
    width = len(columns)
    numbers = np.array([r[3:4 + width] for r in rows], dtype=float).reshape(len(rows), 1 + width)  # None: NaN
    bounds = scored_bounds(rows, scored, columns)
    trends: dict[str, dict[str, list[SetSeries]]] = {}
    start = 0
    for (setting, detector), group in groupby(rows, key=lambda r: (r[0], r[1])):
        listed = list(group)
        part = slice(start, start + len(listed))
        start += len(listed)
        set_ids = tuple(r[2] for r in listed)
        per_column = trends.setdefault(setting, {c: [] for c in columns})
        for index, column in enumerate(columns):
            (band_low, band_centre, band_high), (fixed_low, _, fixed_high) = bounds[part, index].transpose(1, 2, 0)
            per_column[column].append(SetSeries(
                f"det {detector}", detector, numbers[part, 0], numbers[part, 1 + index],
                tuple(r[4 + width + index] for r in listed),
                Bounds(band_low, band_high, band_centre) if np.isfinite(band_centre).any() else None,
                Bounds(fixed_low, fixed_high) if np.isfinite([fixed_low, fixed_high]).any() else None,
                set_ids))
    return trends


KINDS = (ThresholdKind.STATISTICAL, ThresholdKind.FIXED)
"""The bounds of a point: its statistical band (index 0) and its fixed thresholds (index 1)."""


def scored_bounds(rows: Sequence[Sequence[Any]], scored: Sequence[Sequence[Any]], columns: Sequence[str]) -> np.ndarray:
    """``[row, column, kind, (low, centre, high)]`` of :func:`rows_query`'s ``rows`` from :func:`bounds_query`'s
    ``scored`` rows (kind as in :data:`KINDS`); NaN where there is none."""
    bounds = np.full((len(rows), len(columns), len(KINDS), 3), np.nan)
    where = {(r[2], r[1]): i for i, r in enumerate(rows)}
    column_at = {c: i for i, c in enumerate(columns)}
    kind_at = {k.value: i for i, k in enumerate(KINDS)}
    found = np.array([(where[(s[0], s[1])], column_at[s[2]], kind_at[s[3]], *s[4:])
                      for s in scored if (s[0], s[1]) in where], dtype=float).reshape(-1, 6)  # None: NaN
    row, column, kind = found[:, :3].astype(int).T
    bounds[row, column, kind] = found[:, 3:]
    return bounds


def window_of(table: Table) -> Any:
    """SQL condition: the rows of the setting keys ``:keys`` with ``MJD-OBS`` >= ``:since`` [d]."""
    return and_(table.c.setting_key.in_(bindparam("keys", expanding=True)),
                table.c.mjd_obs >= bindparam("since", type_=Float))


@lru_cache(maxsize=16)
def rows_query(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    """The QC1 rows of the window (:func:`window_of`) by key, detector and time: key, detector, set, MJD-OBS, the
    value of each column, then the ``score_<column>`` of each."""
    return (select(table.c.setting_key, table.c.detector, table.c.set_id, table.c.mjd_obs,
                   *(table.c[c] for c in columns), *(table.c[f"score_{c}"] for c in columns))
            .where(window_of(table))
            .order_by(table.c.setting_key, table.c.detector, table.c.mjd_obs))


SET_IDS_PER_QUERY = 5000
"""Set ids bound into one :func:`bounds_query` (SQLite allows 32766 parameters)."""


@lru_cache(maxsize=16)
def bounds_query(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    """The ``scores`` rows of the sets ``:set_ids`` (the window's, as the rows query read them) for ``columns`` (at
    most one statistical and one fixed threshold per QC1 row and parameter, contract 9): set, detector, parameter,
    kind, low, centre, high; read set by set through ``ix_scores_set``. The ids are bound as a list: given the
    window as a subquery, PostgreSQL hashed all of ``scores`` once the window held a few hundred sets."""
    return select(scores.c.set_id, scores.c.detector, scores.c.parameter, scores.c.kind, scores.c.low,
                  scores.c.centre, scores.c.high).where(
        scores.c.set_id.in_(bindparam("set_ids", expanding=True)), scores.c.qc1_table == table.name,
        scores.c.parameter.in_(columns),
        scores.c.kind.in_([k.value for k in KINDS]))
