"""Trend charts as inline SVG, as the trend PNGs draw them: one panel per detector sharing a calendar-dated x axis;
points coloured by score, the statistical warning band shaded as steps with its centre line, fixed thresholds and
dashed limits, values outside a panel's y range as triangles at its edge (aliens), a legend naming the colours and
counting the aliens; axis labels with units, round ticks; each point is a link to its set's page.

Cheap with years of nightly rows: coordinates are whole pixels, and consecutive points that fall on the same pixel
are drawn once; dots with links and tooltips are drawn while a series is short enough for them to be told apart,
beyond that one dotted path per score; aliens (few) always one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from markupsafe import Markup, escape

from flatqc.trend_data import SetSeries
from qc.numbers import format_number
from qc.times import datetime_to_mjd, mjd_to_datetime
from qc.trends import (
    BAND_COLOUR,
    CENTRE_COLOUR,
    FIXED_COLOUR,
    LIMIT_COLOUR,
    SCORE_COLOURS,
    SCORE_LABELS,
    aliens,
    axis_range,
    steps,
)

WIDTH, PAD_L, PAD_R, PAD_B = 640, 70, 12, 40
LEGEND_LINE = 16
"""Height of a line of the legend [px]; the panels start below it."""
PANEL_H, PANEL_GAP = 100, 10
"""Inner height of a detector's panel and the gap between panels [px]."""
MAX_DOTS = 150
"""A series with at most this many points gets a dot (a link to its set) per point."""
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


@dataclass(frozen=True)
class Frame:
    """Pixel coordinates of one panel: MJD ``x0``..``x1`` and values ``y0``..``y1`` onto the panel whose inner area
    starts ``top`` px from the top of the chart."""

    x0: float
    x1: float
    y0: float
    y1: float
    top: float

    @property
    def bottom(self) -> float:
        return self.top + PANEL_H

    def x(self, mjd: np.ndarray | float) -> np.ndarray:
        return PAD_L + (np.asarray(mjd, dtype=float) - self.x0) / (self.x1 - self.x0) * (WIDTH - PAD_L - PAD_R)

    def y(self, value: np.ndarray | float) -> np.ndarray:
        return self.bottom - (np.asarray(value, dtype=float) - self.y0) / (self.y1 - self.y0) * PANEL_H


def trend_svg(series: list[SetSeries], limits: tuple[float, float] | None, title: str, ylabel: str,
              integer: bool = False, link: Callable[[str], str] | None = None) -> Markup:
    """An SVG chart of ``series`` (x MJD-OBS as UTC dates, y the parameter, ``ylabel`` with unit), one panel per
    series, with ``limits`` dashed; ``link(set_id)`` makes each point a link to its set."""
    shown = [s for s in series if np.isfinite(s.values).any()]
    if not shown:
        return Markup('<p class="muted">no data in this range</p>')
    x0 = min(float(s.mjd[np.isfinite(s.values)].min()) for s in shown)
    x1 = max(float(s.mjd[np.isfinite(s.values)].max()) for s in shown)
    if x1 - x0 < 1:
        x0, x1 = x0 - 0.5, x1 + 0.5
    ranges = [axis_range(s.values, s.bounds(limits)) for s in shown]
    below = sum(int(aliens(s.values, r)[0].sum()) for s, r in zip(shown, ranges, strict=True))
    above = sum(int(aliens(s.values, r)[1].sum()) for s, r in zip(shown, ranges, strict=True))
    key, pad_t = legend(shown, limits, below, above)
    pad_t += 6
    height = pad_t + len(shown) * (PANEL_H + PANEL_GAP) - PANEL_GAP + PAD_B
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" class="trend" role="img" aria-label="{escape(title)}">', key]
    frame = Frame(x0, x1, 0.0, 1.0, pad_t)
    for index, (s, y_range) in enumerate(zip(shown, ranges, strict=True)):
        frame = Frame(x0, x1, *y_range, pad_t + index * (PANEL_H + PANEL_GAP))
        panel(parts, s, frame, limits, integer, link)
    for mjd, label in date_ticks(x0, x1):
        x = float(frame.x(mjd))
        parts.append(f'<line x1="{x:.0f}" x2="{x:.0f}" y1="{frame.bottom}" y2="{frame.bottom + 4}" stroke="#999"/>')
        parts.append(f'<text x="{x:.0f}" y="{frame.bottom + 15}" font-size="10" text-anchor="middle" '
                     f'class="xtick">{label}</text>')
    parts.append(f'<text x="{(PAD_L + WIDTH - PAD_R) / 2:.0f}" y="{height - 6}" font-size="11" '
                 'text-anchor="middle">observation date [UTC]</text>')
    parts.append(f'<text transform="translate(12 {(pad_t + frame.bottom) / 2:.0f}) rotate(-90)" font-size="11" '
                 f'text-anchor="middle">{escape(ylabel)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def panel(parts: list[str], s: SetSeries, frame: Frame, limits: tuple[float, float] | None, integer: bool,
          link: Callable[[str], str] | None) -> None:
    """Append one detector's panel to ``parts``."""
    left, right, top, bottom = PAD_L, WIDTH - PAD_R, frame.top, frame.bottom
    parts.append(f'<rect x="{left}" y="{top}" width="{right - left}" height="{PANEL_H}" fill="#fafafa" '
                 'stroke="#ccc"/>')
    ticks, decimals = value_ticks(frame.y0, frame.y1, integer, most=4)
    for value in ticks:
        y = float(frame.y(value))
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.0f}" y2="{y:.0f}" stroke="#eee"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.0f}" text-anchor="end" font-size="10" class="ytick">'
                     f'{value:.{decimals}f}</text>')
    if s.band is not None:
        for xs, (low, high) in steps(s.mjd, s.band.low, s.band.high):
            outline = pixel_path(np.concatenate([frame.x(xs), frame.x(xs[::-1])]),
                                 np.concatenate([frame.y(high), frame.y(low[::-1])]))
            parts.append(f'<polygon points="{outline}" fill="{BAND_COLOUR}" class="band"/>')
        for xs, (centre,) in steps(s.mjd, s.band.centre) if s.band.centre is not None else ():
            parts.append(f'<polyline points="{pixel_path(frame.x(xs), frame.y(centre))}" fill="none" '
                         f'stroke="{CENTRE_COLOUR}" class="centre"/>')
    if s.fixed is not None:
        fixed = s.fixed.other_than(limits)
        for bound in (fixed.low, fixed.high):
            for xs, (line,) in steps(s.mjd, bound):
                parts.append(f'<polyline points="{pixel_path(frame.x(xs), frame.y(line))}" fill="none" '
                             f'stroke="{FIXED_COLOUR}" stroke-dasharray="6 3 2 3" class="fixed"/>')
    for value in limits or ():
        y = float(frame.y(value))
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y:.0f}" y2="{y:.0f}" stroke="{LIMIT_COLOUR}" '
                     f'stroke-dasharray="5 4" class="limit"><title>limit {value:g}</title></line>')
    finite = np.isfinite(s.values)
    low_mask, high_mask = aliens(s.values, (frame.y0, frame.y1))
    inside = finite & ~low_mask & ~high_mask
    px, py = frame.x(s.mjd), frame.y(np.clip(s.values, frame.y0, frame.y1))
    parts.append(f'<polyline points="{pixel_path(px[finite], py[finite])}" fill="none" stroke="#ccc"/>')
    scores = s.point_scores()
    set_ids = np.asarray(s.set_ids or [""] * len(s.mjd), dtype=object)

    def mark(i: int, tag: str, attributes: str, note: str = "") -> str:
        """Point ``i`` as an SVG element with its tooltip, linked to its set."""
        tip = (f"{s.label} {mjd_to_datetime(s.mjd[i]):%Y-%m-%d %H:%M}: {format_number(float(s.values[i]))}{note}, "
               f"score {SCORE_LABELS[scores[i]]} (set {set_ids[i]})")
        element = f"<{tag} {attributes}><title>{escape(tip)}</title></{tag}>"
        return f'<a href="{escape(link(set_ids[i]))}">{element}</a>' if link and set_ids[i] else element

    if finite.sum() <= MAX_DOTS:
        for i in np.flatnonzero(inside).tolist():
            colour, name = SCORE_COLOURS[scores[i]], score_name(scores[i])
            parts.append(mark(i, "circle", f'cx="{px[i]:.0f}" cy="{py[i]:.0f}" r="3" fill="{colour}" '
                                           f'class="point score-{name}"'))
    else:
        for score, colour in SCORE_COLOURS.items():
            mine = inside & (scores == score)
            if mine.any():
                parts.append(f'<path d="{dot_path(px[mine], py[mine])}" stroke="{colour}" stroke-width="4" '
                             f'stroke-linecap="round" class="points score-{score_name(score)}"/>')
    for mask, tip_y, sign, where in ((high_mask, top + 2, 1, "above"), (low_mask, bottom - 2, -1, "below")):
        for i in np.flatnonzero(mask).tolist():
            x = px[i]
            corners = f"{x:.0f},{tip_y:.0f} {x - 4:.0f},{tip_y + 8 * sign:.0f} {x + 4:.0f},{tip_y + 8 * sign:.0f}"
            parts.append(mark(i, "polygon", f'points="{corners}" fill="{SCORE_COLOURS[scores[i]]}" stroke="#333" '
                                            f'stroke-width="0.5" class="alien alien-{where} '
                                            f'score-{score_name(scores[i])}"', f" ({where} the axis)"))
    parts.append(f'<text x="{left + 5}" y="{top + 13}" font-size="10" class="panel" paint-order="stroke" '
                 f'stroke="#fafafa" stroke-width="3">{escape(s.label)}</text>')


def legend(series: list[SetSeries], limits: tuple[float, float] | None, below: int, above: int) -> tuple[str, int]:
    """The legend above the panels, as many lines as it needs, and its height [px]: what each colour, the band and
    the lines mean, and how many values are drawn as triangles at the top and bottom edge."""
    items = [(f'<circle cx="{{x6}}" cy="{{y6}}" r="4" fill="{colour}"/>', SCORE_LABELS[score])
             for score, colour in SCORE_COLOURS.items()]
    if any(s.band is not None for s in series):
        items.append((f'<rect x="{{x}}" y="{{y1}}" width="12" height="10" fill="{BAND_COLOUR}" '
                      f'stroke="{CENTRE_COLOUR}" stroke-width="0.5"/>', "statistical warning band, centre"))
    if any(s.fixed is not None and np.isfinite(s.fixed.other_than(limits).values()).any() for s in series):
        items.append((f'<line x1="{{x}}" x2="{{x12}}" y1="{{y6}}" y2="{{y6}}" stroke="{FIXED_COLOUR}" '
                      'stroke-dasharray="6 3 2 3"/>', "fixed threshold"))
    if limits:
        items.append((f'<line x1="{{x}}" x2="{{x12}}" y1="{{y6}}" y2="{{y6}}" stroke="{LIMIT_COLOUR}" '
                      'stroke-dasharray="5 4"/>', "limits"))
    items += [('<polygon points="{x2},{y10} {x6},{y2} {x10},{y10}" fill="#888"/>', f"{above} above the y range"),
              ('<polygon points="{x2},{y2} {x6},{y10} {x10},{y2}" fill="#888"/>', f"{below} below the y range")]
    parts, x, top = ['<g class="legend" font-size="10">'], PAD_L, 2
    for mark, text in items:
        width = 15 + round(5.6 * len(text)) + 12
        if x + width > WIDTH - PAD_R and x > PAD_L:
            x, top = PAD_L, top + LEGEND_LINE
        parts.append(mark.format(**{f"x{d}": x + d for d in (2, 6, 10, 12)}, x=x,
                                 **{f"y{d}": top + d for d in (1, 2, 6, 10)}))
        parts.append(f'<text x="{x + 15}" y="{top + 10}">{escape(text)}</text>')
        x += width
    parts.append("</g>")
    return "".join(parts), top + LEGEND_LINE


def score_name(score: str | None) -> str:
    """A score as a CSS class word (``none`` for not scored)."""
    return score or "none"


def dot_path(xs: np.ndarray, ys: np.ndarray) -> str:
    """An SVG path of a round dot at each pixel (zero-length segments drawn with round caps), repeats dropped."""
    return "".join(f"M{point}h0" for point in pixel_path(xs, ys).split(" "))


def pixel_path(xs: np.ndarray, ys: np.ndarray) -> str:
    """``"x,y x,y ..."`` in whole pixels, without consecutive repeats of the same pixel."""
    points = np.column_stack([np.rint(xs), np.rint(ys)]).astype(np.int32)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    return " ".join(f"{x},{y}" for x, y in points[keep].tolist())
