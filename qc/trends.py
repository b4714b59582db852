"""HealthCheck trend plots (contract 7): a QC1 parameter against time, one series per detector, limits drawn,
points outside the limits marked. Pure: arrays in, PNG out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from qc.display import PNG_OPTIONS


@dataclass(frozen=True)
class TrendSeries:
    """One detector's values of one QC1 parameter; ``mjd`` is MJD-OBS [d]."""

    label: str
    mjd: np.ndarray
    values: np.ndarray


def outside(values: np.ndarray, limits: tuple[float, float] | None) -> np.ndarray:
    """Boolean mask of finite values outside the closed interval ``limits`` (all False without limits)."""
    if limits is None:
        return np.zeros(values.shape, dtype=bool)
    low, high = limits
    return np.isfinite(values) & ((values < low) | (values > high))


def trend_plot(path: Path, title: str, ylabel: str, series: list[TrendSeries],
               limits: tuple[float, float] | None = None, dpi: int = 90) -> Path:
    """Draw the trend PNG: points per detector, dashed limit lines, red rings around outliers."""
    fig = Figure(figsize=(10, 3.6))
    ax = fig.add_subplot()
    for s in series:
        ax.plot(s.mjd, s.values, "o", ms=3, label=s.label)
        bad = outside(s.values, limits)
        if bad.any():
            ax.plot(s.mjd[bad], s.values[bad], "o", ms=8, mfc="none", mec="red", mew=1.2)
    if limits is not None:
        for value in limits:
            ax.axhline(value, color="0.3", ls="--", lw=1)
        ax.text(1.0, limits[1], f" {limits[1]:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
        ax.text(1.0, limits[0], f" {limits[0]:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("MJD-OBS [d]")
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=7, ncols=len(series), loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, pil_kwargs=PNG_OPTIONS, format="png")
    tmp.replace(path)
    return path
