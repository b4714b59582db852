"""Trend charts as inline SVG: one line per detector, limit lines, dated x axis, outliers ringed in red.

Cheap with years of nightly rows: coordinates are whole pixels, and consecutive points that fall on the same pixel
are drawn once; dots are drawn only while a series is short enough for them to be told apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
from markupsafe import Markup, escape

from qc.trends import TrendSeries, outside

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 240, 56, 12, 24, 30
MAX_DOTS = 150
"""A series with at most this many points also gets a dot per point."""
MJD_EPOCH = datetime(1858, 11, 17)


def mjd_label(mjd: float, span_days: float = 10.0) -> str:
    """UTC date of an MJD [d]; with the time of day when the axis spans less than 5 days."""
    moment = MJD_EPOCH + timedelta(days=float(mjd))
    return moment.strftime("%Y-%m-%d %H:%M" if span_days < 5 else "%Y-%m-%d")


def pixel_path(xs: np.ndarray, ys: np.ndarray) -> str:
    """``"x,y x,y ..."`` in whole pixels, without consecutive repeats of the same pixel."""
    points = np.column_stack([np.rint(xs), np.rint(ys)]).astype(np.int32)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    return " ".join(f"{x},{y}" for x, y in points[keep].tolist())


def trend_svg(series: list[TrendSeries], limits: tuple[float, float] | None, title: str) -> Markup:
    """An SVG chart of ``series`` (x MJD-OBS, y the parameter) with ``limits`` dashed and outliers ringed."""
    finite = [(s, np.isfinite(s.values)) for s in series]
    finite = [(s, ok) for s, ok in finite if ok.any()]
    if not finite:
        return Markup('<p class="muted">no data in this range</p>')
    xs_all = np.concatenate([s.mjd[ok] for s, ok in finite])
    ys_all = np.concatenate([s.values[ok] for s, ok in finite] + ([np.asarray(limits, dtype=float)] if limits else []))
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    if x1 - x0 < 1:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    margin = 0.06 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.05, 1.0)
    y0, y1 = y0 - margin, y1 + margin
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(x: np.ndarray | float) -> np.ndarray | float:
        return PAD_L + (np.asarray(x) - x0) / (x1 - x0) * inner_w

    def sy(y: np.ndarray | float) -> np.ndarray | float:
        return HEIGHT - PAD_B - (np.asarray(y) - y0) / (y1 - y0) * inner_h

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="trend" role="img" aria-label="{escape(title)}">',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#ccc"/>']
    for value in np.linspace(y0 + margin, y1 - margin, 3):
        parts.append(f'<text x="{PAD_L - 4}" y="{float(sy(value)) + 4:.0f}" text-anchor="end" font-size="10">'
                     f'{value:.4g}</text>')
    for mjd in np.linspace(x0, x1, 5):
        anchor = "start" if mjd == x0 else "end" if mjd == x1 else "middle"
        parts.append(f'<text x="{float(sx(mjd)):.0f}" y="{HEIGHT - 12}" font-size="10" text-anchor="{anchor}">'
                     f'{mjd_label(mjd, x1 - x0)}</text>')
    if limits:
        for value in limits:
            parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{float(sy(value)):.0f}" '
                         f'y2="{float(sy(value)):.0f}" stroke="#555" stroke-dasharray="5 4">'
                         f'<title>limit {value:g}</title></line>')
    for index, (s, ok) in enumerate(finite):
        colour = COLOURS[index % len(COLOURS)]
        px, py = sx(s.mjd[ok]), sy(s.values[ok])
        parts.append(f'<polyline points="{pixel_path(px, py)}" fill="none" stroke="{colour}" stroke-width="1">'
                     f'<title>{escape(s.label)}</title></polyline>')
        if ok.sum() <= MAX_DOTS:
            parts += [f'<circle cx="{x:.0f}" cy="{y:.0f}" r="2" fill="{colour}"/>' for x, y in zip(px, py, strict=True)]
        parts.append(f'<text x="{PAD_L + 6 + 48 * index}" y="{PAD_T - 8}" font-size="11" fill="{colour}">'
                     f'{escape(s.label)}</text>')
        bad = outside(s.values, limits) & ok
        for mjd, value in zip(s.mjd[bad], s.values[bad], strict=True):
            parts.append(f'<circle cx="{float(sx(mjd)):.0f}" cy="{float(sy(value)):.0f}" r="4" fill="none" '
                         f'stroke="red" class="outlier"><title>{escape(s.label)} {mjd_label(mjd, 0)} (MJD {mjd:.3f}): '
                         f'{value:.4g} outside limits</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
