"""HealthCheck trend plots (contract 7): a QC1 parameter against the observation date, one series per detector, limits
drawn, points outside the limits marked. Pure: arrays in, PNG out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from qc.display import PNG_OPTIONS
from qc.times import UNIX_EPOCH_MJD

DETECTOR_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
"""Colour of detector n is entry n - 1 in every trend PNG (red is kept for the outlier rings)."""


@dataclass(frozen=True)
class TrendSeries:
    """One detector's values of one QC1 parameter; ``mjd`` is MJD-OBS [d]."""

    label: str
    detector: int
    mjd: np.ndarray
    values: np.ndarray


def detector_colour(detector: int) -> str:
    """The fixed colour of a detector (1-based)."""
    return DETECTOR_COLOURS[(detector - 1) % len(DETECTOR_COLOURS)]


def mjd_to_date_number(mjd: np.ndarray) -> np.ndarray:
    """MJD [d] as matplotlib date numbers (days since 1970-01-01 UTC)."""
    return np.asarray(mjd, dtype=np.float64) - UNIX_EPOCH_MJD


def outside(values: np.ndarray, limits: tuple[float, float] | None) -> np.ndarray:
    """Boolean mask of finite values outside the closed interval ``limits`` (all False without limits)."""
    if limits is None:
        return np.zeros(values.shape, dtype=bool)
    low, high = limits
    return np.isfinite(values) & ((values < low) | (values > high))


def trend_plot(path: Path, title: str, ylabel: str, series: Sequence[TrendSeries],
               limits: tuple[float, float] | None = None, integer: bool = False, dpi: int = 90) -> Path:
    """Write the trend PNG of :func:`trend_figure` (to a temporary name of this process, then renamed: two workers
    drawing the same setting's trends at once each replace the file whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    trend_figure(title, ylabel, series, limits, integer).savefig(tmp, dpi=dpi, pil_kwargs=PNG_OPTIONS, format="png")
    tmp.replace(path)
    return path


def trend_figure(title: str, ylabel: str, series: Sequence[TrendSeries], limits: tuple[float, float] | None = None,
                 integer: bool = False) -> Figure:
    """Points per detector in its fixed colour against the calendar date (UTC), dashed limit lines labelled at the
    right, red rings around outliers, legend outside the axes; ``integer`` for counts (integer ticks only)."""
    fig = Figure(figsize=(10, 3.6))
    fig.subplots_adjust(left=0.08, right=0.80, top=0.88, bottom=0.16)
    ax = fig.add_subplot()
    for s in series:
        dates = mjd_to_date_number(s.mjd)
        ax.plot(dates, s.values, "o", ms=3, color=detector_colour(s.detector), label=s.label)
        bad = outside(s.values, limits)
        if bad.any():
            ax.plot(dates[bad], s.values[bad], "o", ms=8, mfc="none", mec="red", mew=1.2)
    handles = ax.get_legend_handles_labels()[0]
    if limits is not None:
        for value in limits:
            ax.axhline(value, color="0.3", ls="--", lw=1)
            ax.text(1.005, value, f"{value:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
        handles += [Line2D([], [], color="0.3", ls="--", lw=1, label=f"limits {limits[0]:g} .. {limits[1]:g}"),
                    Line2D([], [], ls="", marker="o", ms=8, mfc="none", mec="red", label="outside the limits")]
    locator = AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=integer))
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("observation date [UTC]")
    ax.set_ylabel(ylabel)
    ax.tick_params(labelsize=8)
    if series:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.06, 1.0), borderaxespad=0.0)
    else:
        ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center")
    return fig
