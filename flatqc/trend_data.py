"""Trend series read from a QC1 table, shared by the worker's HealthCheck reports and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import numpy as np
from sqlalchemy import Table, func, select
from sqlalchemy.engine import Engine

from qc.trends import TrendSeries

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


def setting_keys(engine: Engine, table: Table) -> list[str]:
    """Every setting key that has QC1 rows, sorted."""
    with engine.connect() as conn:
        return list(conn.execute(select(table.c.setting_key).distinct().order_by(table.c.setting_key)).scalars())


def load_trends(engine: Engine, table: Table, columns: Sequence[str], key: str | None = None,
                days: float | None = None) -> dict[str, dict[str, list[SetSeries]]]:
    """``{setting key: {column: [one series per detector]}}`` in one query, in time order (MJD-OBS [d]), with the
    set of each point.

    ``key`` limits to one setting; ``days`` to the last ``days`` days before the newest row of the table (so a
    history that ended years ago still shows its last season). NULL values become NaN.
    """
    query = select(table.c.setting_key, table.c.detector, table.c.set_id, table.c.mjd_obs,
                   *(table.c[c] for c in columns)).where(table.c.mjd_obs.is_not(None))
    if key is not None:
        query = query.where(table.c.setting_key == key)
    with engine.connect() as conn:
        if days is not None:
            newest = conn.execute(select(func.max(table.c.mjd_obs))).scalar()
            if newest is not None:
                query = query.where(table.c.mjd_obs >= newest - days)
        rows = conn.execute(query.order_by(table.c.setting_key, table.c.detector, table.c.mjd_obs)).all()
    trends: dict[str, dict[str, list[SetSeries]]] = {}
    for (setting, detector), group in groupby(rows, key=lambda r: (r[0], r[1])):
        listed = list(group)
        set_ids = tuple(r[2] for r in listed)
        block = np.array([r[3:] for r in listed], dtype=float)  # None -> NaN
        per_column = trends.setdefault(setting, {c: [] for c in columns})
        for index, column in enumerate(columns, start=1):
            per_column[column].append(SetSeries(f"det {detector}", detector, block[:, 0], block[:, index], set_ids))
    return trends
