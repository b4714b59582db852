"""Trend charts as inline SVG: one line per detector in its fixed colour, limit lines, calendar-dated x axis, axis
labels with units, round ticks, outliers ringed in red; each point is a link to its set's page.

Cheap with years of nightly rows: coordinates are whole pixels, and consecutive points that fall on the same pixel
are drawn once; dots (and their links) are drawn only while a series is short enough for them to be told apart,
outlier rings (few) always.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import numpy as np
from markupsafe import Markup, escape

from flatqc.trend_data import SetSeries
from qc.numbers import format_number
from qc.times import datetime_to_mjd, mjd_to_datetime
from qc.trends import detector_colour, outside

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 260, 70, 12, 24, 46
MAX_DOTS = 150
"""A series with at most this many points also gets a dot (a link to its set) per point."""
HOUR = 1 / 24
DATE_STEPS: tuple[tuple[float, str], ...] = (
    (HOUR, "%m-%d %H:%M"), (3 * HOUR, "%m-%d %H:%M"), (6 * HOUR, "%m-%d %H:%M"), (12 * HOUR, "%m-%d %H:%M"),
    (1, "%Y-%m-%d"), (2, "%Y-%m-%d"), (7, "%Y-%m-%d"), (14, "%Y-%m-%d"),
)
"""Tick steps [d] below a month, with the label format of each."""
MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120)
"""Tick steps in calendar months."""


def date_ticks(x0: float, x1: float, most: int = 6) -> list[tuple[float, str]]:
    """Calendar ticks (MJD, label) inside [x0, x1]: whole hours, days, weeks, months or years, at most ``most``."""
    span = x1 - x0
    for step, pattern in DATE_STEPS:
        if span / step <= most:
            first = math.ceil(x0 / step - 1e-9) * step
            return [(t, mjd_to_datetime(t).strftime(pattern)) for t in np.arange(first, x1 + 1e-9, step)]
    months = next((m for m in MONTH_STEPS if span / (30.44 * m) <= most), MONTH_STEPS[-1])
    start = mjd_to_datetime(x0)
    index = start.year * 12 + start.month - 1
    index += -index % months if start.day == 1 and start.hour == 0 else months - index % months
    ticks: list[tuple[float, str]] = []
    while True:
        moment = datetime(index // 12, index % 12 + 1, 1)
        mjd = datetime_to_mjd(moment)
        if mjd > x1:
            return ticks
        ticks.append((mjd, moment.strftime("%Y" if months >= 12 else "%Y-%m")))
        index += months


def value_ticks(low: float, high: float, integer: bool = False, most: int = 6) -> tuple[list[float], int]:
    """Round ticks (1, 2, 2.5, 5 x 10^k) inside [low, high] and the decimals that tell them apart; whole numbers
    only with ``integer``."""
    raw = (high - low) / most if high > low else max(abs(low), 1.0)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(low / step - 1e-9) * step
    ticks = [float(t) for t in np.arange(first, high + step * 1e-9, step)]
    quarter = 1 if round(step / magnitude, 1) == 2.5 else 0  # 0.25, 2.5, 25: one more decimal than the magnitude
    decimals = 0 if integer else max(0, quarter - math.floor(math.log10(step) + 1e-9))
    return ticks, decimals


def trend_svg(series: list[SetSeries], limits: tuple[float, float] | None, title: str, ylabel: str,
              integer: bool = False, link: Callable[[str], str] | None = None) -> Markup:
    """An SVG chart of ``series`` (x MJD-OBS as UTC dates, y the parameter, ``ylabel`` with unit) with ``limits``
    dashed and outliers ringed; ``link(set_id)`` makes each point a link to its set."""
    finite = [(s, np.isfinite(s.values)) for s in series]
    finite = [(s, ok) for s, ok in finite if ok.any()]
    if not finite:
        return Markup('<p class="muted">no data in this range</p>')
    xs_all = np.concatenate([s.mjd[ok] for s, ok in finite])
    ys_all = np.concatenate([s.values[ok] for s, ok in finite] + ([np.asarray(limits, dtype=float)] if limits else []))
    x0, x1 = float(xs_all.min()), float(xs_all.max())
    if x1 - x0 < 1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = float(ys_all.min()), float(ys_all.max())
    margin = 0.08 * (y1 - y0) if y1 > y0 else max(abs(y0) * 0.05, 1.0)
    y0, y1 = y0 - margin, y1 + margin
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def sx(x: np.ndarray | float) -> np.ndarray | float:
        return PAD_L + (np.asarray(x) - x0) / (x1 - x0) * inner_w

    def sy(y: np.ndarray | float) -> np.ndarray | float:
        return HEIGHT - PAD_B - (np.asarray(y) - y0) / (y1 - y0) * inner_h

    def linked(set_id: str, element: str) -> str:
        return f'<a href="{escape(link(set_id))}">{element}</a>' if link and set_id else element

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="trend" role="img" aria-label="{escape(title)}">',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="#fafafa" stroke="#ccc"/>']
    ticks, decimals = value_ticks(y0, y1, integer)
    for value in ticks:
        y = float(sy(value))
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.0f}" y2="{y:.0f}" stroke="#eee"/>')
        parts.append(f'<text x="{PAD_L - 4}" y="{y + 4:.0f}" text-anchor="end" font-size="10" class="ytick">'
                     f'{value:.{decimals}f}</text>')
    for mjd, label in date_ticks(x0, x1):
        x = float(sx(mjd))
        parts.append(f'<line x1="{x:.0f}" x2="{x:.0f}" y1="{HEIGHT - PAD_B}" y2="{HEIGHT - PAD_B + 4}" stroke="#999"/>')
        parts.append(f'<text x="{x:.0f}" y="{HEIGHT - PAD_B + 15}" font-size="10" text-anchor="middle" '
                     f'class="xtick">{label}</text>')
    parts.append(f'<text x="{PAD_L + inner_w / 2:.0f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
                 'observation date [UTC]</text>')
    parts.append(f'<text transform="translate(12 {PAD_T + inner_h / 2:.0f}) rotate(-90)" font-size="11" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    if limits:
        for value in limits:
            parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{float(sy(value)):.0f}" '
                         f'y2="{float(sy(value)):.0f}" stroke="#555" stroke-dasharray="5 4">'
                         f'<title>limit {value:g}</title></line>')
    for index, (s, ok) in enumerate(finite):
        colour = detector_colour(s.detector)
        px, py = np.asarray(sx(s.mjd[ok])), np.asarray(sy(s.values[ok]))
        parts.append(f'<polyline points="{pixel_path(px, py)}" fill="none" stroke="{colour}" stroke-width="1">'
                     f'<title>{escape(s.label)}</title></polyline>')
        set_ids = np.asarray(s.set_ids or [""] * len(s.mjd), dtype=object)
        if ok.sum() <= MAX_DOTS:
            for x, y, mjd, value, set_id in zip(px, py, s.mjd[ok], s.values[ok], set_ids[ok], strict=True):
                tip = f"{s.label} {mjd_to_datetime(mjd):%Y-%m-%d %H:%M}: {format_number(value)} (set {set_id})"
                parts.append(linked(set_id, f'<circle cx="{x:.0f}" cy="{y:.0f}" r="3" fill="{colour}" class="point">'
                                            f'<title>{escape(tip)}</title></circle>'))
        parts.append(f'<text x="{PAD_L + 6 + 48 * index}" y="{PAD_T - 8}" font-size="11" fill="{colour}">'
                     f'{escape(s.label)}</text>')
        bad = outside(s.values, limits) & ok
        for mjd, value, set_id in zip(s.mjd[bad], s.values[bad], set_ids[bad], strict=True):
            tip = (f"{s.label} {mjd_to_datetime(mjd):%Y-%m-%d %H:%M}: {format_number(value)} outside limits "
                   f"(set {set_id})")
            parts.append(linked(set_id, f'<circle cx="{float(sx(mjd)):.0f}" cy="{float(sy(value)):.0f}" r="5" '
                                        f'fill="none" stroke="red" class="outlier"><title>{escape(tip)}</title>'
                                        '</circle>'))
    parts.append("</svg>")
    return Markup("".join(parts))


def pixel_path(xs: np.ndarray, ys: np.ndarray) -> str:
    """``"x,y x,y ..."`` in whole pixels, without consecutive repeats of the same pixel."""
    points = np.column_stack([np.rint(xs), np.rint(ys)]).astype(np.int32)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    return " ".join(f"{x},{y}" for x, y in points[keep].tolist())
