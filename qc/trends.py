"""HealthCheck trend plots (contract 7, scored as in contract 9): a QC1 parameter against the observation date, one
panel per detector. Points are coloured by their score; the statistical warning band is shaded as steps through time
with its centre line; fixed thresholds and trend limits are lines; values outside the panel's y range are drawn at
its edge as triangles ("aliens", as ESO's HealthCheck does). Pure: arrays in, PNG out.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from qc.display import PNG_OPTIONS
from qc.times import UNIX_EPOCH_MJD

SCORE_COLOURS: Mapping[str | None, str] = {"ok": "#2ca02c", "warn": "#f39c12", "fail": "#d62728", None: "#9a9a9a"}
"""Colour of a point by its score (contract 9): ok green, warn amber, fail red, not scored (None) grey."""
SCORE_LABELS: Mapping[str | None, str] = {"ok": "ok", "warn": "warn", "fail": "fail", None: "not scored"}
"""How a legend names each score."""
BAND_COLOUR = "#d4e4f4"
"""Fill of the statistical warning band (opaque, drawn under everything else)."""
CENTRE_COLOUR = "#4f81bd"
"""The band's centre line (the median of the earlier values)."""
FIXED_COLOUR = "#7b4fa0"
"""Lines of fixed thresholds other than the trend limits."""
LIMIT_COLOUR = "#555555"
"""The dashed HealthCheck trend limits (contract 7)."""
BULK = (2.0, 98.0)
"""Percentiles of a panel's values that bound their bulk (:func:`axis_range`)."""
FENCE = 1.0
"""Values farther than this many bulk widths beyond the core (bulk and bounds) are outside the y range."""
MARGIN = 0.06
"""Space left above and below the range's extremes, as a fraction of its span."""


@dataclass(frozen=True)
class Bounds:
    """Bounds in force at each point of a series (NaN where there are none): the statistical warning band
    (``low``/``high`` = centre ∓ k_warn × spread, and its ``centre``) or a fixed threshold's bounds (no centre)."""

    low: np.ndarray
    high: np.ndarray
    centre: np.ndarray | None = None

    def values(self) -> np.ndarray:
        """Every bound of every point, one flat array (NaN included)."""
        return np.concatenate([self.low, self.high, *([] if self.centre is None else [self.centre])])

    def other_than(self, limits: tuple[float, float] | None) -> Bounds:
        """These bounds without the values equal to one of ``limits`` (NaN there: a line drawn already)."""
        if limits is None:
            return self
        return replace(self, low=np.where(np.isin(self.low, limits), np.nan, self.low),
                       high=np.where(np.isin(self.high, limits), np.nan, self.high))


@dataclass(frozen=True)
class TrendSeries:
    """One detector's values of one QC1 parameter; ``mjd`` is MJD-OBS [d]; per point its score and the bounds it
    was scored against (``band``: statistical, ``fixed``: fixed thresholds), None when no point has any."""

    label: str
    detector: int
    mjd: np.ndarray
    values: np.ndarray
    scores: tuple[str | None, ...] = ()
    """Score of each point (``ok``, ``warn``, ``fail`` or None); empty: no point is scored."""
    band: Bounds | None = None
    fixed: Bounds | None = None

    def point_scores(self) -> np.ndarray:
        """The score of each point as an object array (None: not scored)."""
        return np.array(self.scores if self.scores else [None] * len(self.mjd), dtype=object)

    def bounds(self, limits: tuple[float, float] | None) -> np.ndarray:
        """Every bound drawn in this series' panel: its band, fixed thresholds and ``limits``."""
        drawn = [b.values() for b in (self.band, self.fixed) if b is not None]
        return np.concatenate([*drawn, np.asarray(limits or (), dtype=float)])


def score_colour(score: str | None) -> str:
    """The colour of a point scored ``score`` (``ok``, ``warn``, ``fail``; None: not scored)."""
    return SCORE_COLOURS[score]


def mjd_to_date_number(mjd: np.ndarray) -> np.ndarray:
    """MJD [d] as matplotlib date numbers (days since 1970-01-01 UTC)."""
    return np.asarray(mjd, dtype=np.float64) - UNIX_EPOCH_MJD


def axis_range(values: np.ndarray, bounds: np.ndarray | Sequence[float] = (), fence: float = FENCE,
               margin: float = MARGIN) -> tuple[float, float]:
    """The y range of a panel, robust to a few wild values.

    The bulk of the finite ``values`` spans their 2nd to 98th percentile, taken inward (numpy's ``higher`` and
    ``lower`` methods: at least the lowest and the highest value are left out of it); the core holds the bulk and
    every finite bound drawn (band edges and centre, thresholds, limits). The range holds the core and every value
    within ``fence`` bulk widths of it, plus ``margin`` of its span on each side; values beyond are aliens. A bulk
    of zero width counts as 10 % of its magnitude (1 at zero).
    """
    finite = values[np.isfinite(values)]
    edges = np.asarray(bounds, dtype=float).ravel()
    edges = edges[np.isfinite(edges)]
    width = 0.0
    if finite.size:
        bulk = (np.percentile(finite, BULK[0], method="higher"), np.percentile(finite, BULK[1], method="lower"))
        width = abs(float(bulk[1] - bulk[0])) or _zero_width(float(bulk[1]))
        edges = np.concatenate([edges, bulk])
    if not edges.size:
        return 0.0, 1.0
    low, high = float(edges.min()), float(edges.max())
    kept = finite[(finite >= low - fence * width) & (finite <= high + fence * width)]
    if kept.size:
        low, high = min(low, float(kept.min())), max(high, float(kept.max()))
    if high == low:
        return low - _zero_width(low) / 2, high + _zero_width(high) / 2
    pad = margin * (high - low)
    return low - pad, high + pad


def _zero_width(value: float) -> float:
    return abs(value) * 0.1 or 1.0


def aliens(values: np.ndarray, y_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the finite ``values`` below and above ``y_range`` (drawn as triangles at the bottom and top edge)."""
    low, high = y_range
    finite = np.isfinite(values)
    return finite & (values < low), finite & (values > high)


def steps(x: np.ndarray, *ys: np.ndarray) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Step curves of ``ys`` over ``x`` (sorted), each value held over its point's share of time: from half-way since
    the previous point to half-way to the next (the first and last from their own point). One ``(xs, [ys...])`` per
    run of points where every one of ``ys`` is finite; a run of k points has 2k vertices."""
    if not len(x):
        return []
    x = np.asarray(x, dtype=float)
    edges = np.concatenate([x[:1], (x[1:] + x[:-1]) / 2, x[-1:]])
    finite = np.logical_and.reduce([np.isfinite(y) for y in ys])
    changes = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    return [(np.repeat(edges[start:stop + 1], 2)[1:-1], [np.repeat(y[start:stop], 2) for y in ys])
            for start, stop in zip(changes[::2], changes[1::2], strict=True)]


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
    """One panel per series (detector) against the calendar date (UTC), sharing the time axis: the statistical band
    shaded with its centre, fixed thresholds and dashed ``limits``, points coloured by score, aliens as triangles at
    the edge; the legend beside the panels names the colours and counts the aliens; ``integer`` for counts."""
    height = 1.0 + 1.5 * max(len(series), 1)
    fig = Figure(figsize=(11, height))
    fig.subplots_adjust(left=0.08, right=0.77, top=1 - 0.4 / height, bottom=0.55 / height, hspace=0.12)
    axes = fig.subplots(max(len(series), 1), 1, sharex=True, squeeze=False)[:, 0]
    below = above = 0
    for ax, s in zip(axes, series, strict=False):
        low_count, high_count = _draw_panel(ax, s, limits, integer)
        below, above = below + low_count, above + high_count
    axes[0].set_title(title, fontsize=10)
    bottom = axes[-1]
    locator = AutoDateLocator(minticks=3, maxticks=8)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    bottom.set_xlabel("observation date [UTC]")
    fig.supylabel(ylabel, fontsize=10, x=0.01)
    if not series:
        bottom.text(0.5, 0.5, "no data yet", transform=bottom.transAxes, ha="center")
        return fig
    handles: list[Artist] = [Line2D([], [], ls="", marker="o", ms=5, color=SCORE_COLOURS[s], label=SCORE_LABELS[s])
               for s in SCORE_COLOURS]
    if any(s.band is not None for s in series):
        handles += [Patch(color=BAND_COLOUR, label="statistical warning band"),
                    Line2D([], [], color=CENTRE_COLOUR, lw=1, label="band centre (median)")]
    if any(s.fixed is not None and np.isfinite(s.fixed.other_than(limits).values()).any() for s in series):
        handles.append(Line2D([], [], color=FIXED_COLOUR, lw=1, ls="-.", label="fixed threshold"))
    if limits is not None:
        handles.append(Line2D([], [], color=LIMIT_COLOUR, ls="--", lw=1,
                              label=f"trend limits {limits[0]:g} .. {limits[1]:g}"))
    handles += [Line2D([], [], ls="", marker="^", ms=6, color="0.5", label=f"{above} above the y range"),
                Line2D([], [], ls="", marker="v", ms=6, color="0.5", label=f"{below} below the y range")]
    axes[0].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.05, 1.0), borderaxespad=0.0)
    return fig


def _draw_panel(ax: Axes, s: TrendSeries, limits: tuple[float, float] | None, integer: bool) -> tuple[int, int]:
    """One detector's panel; returns how many of its values lie below and above its y range."""
    dates = mjd_to_date_number(s.mjd)
    y_range = axis_range(s.values, s.bounds(limits))
    if s.band is not None:
        for xs, (low, high) in steps(dates, s.band.low, s.band.high):
            ax.fill_between(xs, low, high, color=BAND_COLOUR, lw=0, zorder=1)
        for xs, (centre,) in steps(dates, s.band.centre) if s.band.centre is not None else ():
            ax.plot(xs, centre, color=CENTRE_COLOUR, lw=0.9, zorder=2)
    if s.fixed is not None:
        fixed = s.fixed.other_than(limits)
        for bound in (fixed.low, fixed.high):
            for xs, (line,) in steps(dates, bound):
                ax.plot(xs, line, color=FIXED_COLOUR, lw=1, ls="-.", zorder=2)
    for value in limits or ():
        ax.axhline(value, color=LIMIT_COLOUR, ls="--", lw=1, zorder=2)
        if y_range[0] <= value <= y_range[1]:
            ax.text(1.003, value, f"{value:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    low_mask, high_mask = aliens(s.values, y_range)
    finite = np.isfinite(s.values)
    ax.plot(dates[finite], np.clip(s.values[finite], *y_range), color="0.8", lw=0.6, zorder=3)
    colours = np.array([SCORE_COLOURS[score] for score in s.point_scores()], dtype=object)
    inside = finite & ~low_mask & ~high_mask
    if inside.any():
        ax.scatter(dates[inside], s.values[inside], s=13, c=list(colours[inside]), linewidths=0, zorder=4)
    edge = ax.get_xaxis_transform()  # x: date, y: fraction of the panel's height
    for mask, height, marker in ((high_mask, 0.96, "^"), (low_mask, 0.04, "v")):
        if mask.any():
            ax.scatter(dates[mask], np.full(int(mask.sum()), height), s=40, marker=marker, c=list(colours[mask]),
                       edgecolors="0.2", linewidths=0.5, transform=edge, zorder=5)
    ax.set_ylim(*y_range)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10], integer=integer))
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.tick_params(labelsize=8)
    ax.text(0.005, 0.94, s.label, transform=ax.transAxes, va="top", fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    return int(low_mask.sum()), int(high_mask.sum())
