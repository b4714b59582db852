"""Trend charts as inline SVG: one polyline per detector, limit lines, outliers ringed. Fast for 10^5 points."""

from __future__ import annotations

from markupsafe import Markup, escape

from flatqc.web.queries import TrendSeries

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 900, 260, 60, 20, 20, 36


def trend_svg(series: list[TrendSeries], limits: tuple[float, float] | None, ylabel: str) -> Markup:
    """An SVG chart; x is MJD-OBS, y the parameter; points outside ``limits`` get a red ring."""
    points = [p for s in series for p in s.points]
    if not points:
        return Markup('<p class="empty">no data in this range</p>')
    xs = [p[0] for p in points]
    ys = [p[1] for p in points] + (list(limits) if limits else [])
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
    margin = 0.05 * (y1 - y0)
    y0, y1 = y0 - margin, y1 + margin

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (WIDTH - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return HEIGHT - PAD_B - (y - y0) / (y1 - y0) * (HEIGHT - PAD_T - PAD_B)

    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="trend" role="img" aria-label="{escape(ylabel)}">',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{WIDTH - PAD_L - PAD_R}" height="{HEIGHT - PAD_T - PAD_B}" '
             'fill="#fafafa" stroke="#ccc"/>']
    for value in (y0 + margin, (y0 + y1) / 2, y1 - margin):
        parts.append(f'<text x="{PAD_L - 4}" y="{sy(value) + 4:.1f}" text-anchor="end" font-size="10">'
                     f'{value:.4g}</text>')
    parts.append(f'<text x="{PAD_L}" y="{HEIGHT - 8}" font-size="10">MJD {x0:.1f}</text>'
                 f'<text x="{WIDTH - PAD_R}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">MJD {x1:.1f}</text>'
                 f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" font-size="11" text-anchor="middle">{escape(ylabel)}</text>')
    if limits:
        for value in limits:
            parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                         f'stroke="#555" stroke-dasharray="5 4"><title>limit {value:g}</title></line>')
    outliers = []
    for index, s in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1">'
                     f'<title>det {s.detector}</title></polyline>')
        parts.append(f'<text x="{PAD_L + 8 + 60 * index}" y="{PAD_T + 14}" font-size="11" fill="{colour}">'
                     f'det {s.detector}</text>')
        if limits:
            outliers += [(x, y, s.detector) for x, y in s.points if not limits[0] <= y <= limits[1]]
    for x, y, det in outliers:
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4" fill="none" stroke="red" class="outlier">'
                     f'<title>det {det} MJD {x:.3f}: {y:.4g} outside limits</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))
