"""The cover sheet: one page per set with keys, the QC1 table, the verdict with reasons and thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from qc.display import PNG_OPTIONS
from qc.profiles import profile_named
from qc.records import QC1_NAMES, SetResult

VERDICT_COLOURS = {"passed": "#1a7f37", "failed": "#c62828", "not_assessable": "#b26a00"}
THUMBNAIL_PIXELS = (480, 360)
"""Largest size of a thumbnail on the cover [px]; about twice its printed size, so it stays sharp."""


def thumbnail(path: Path) -> np.ndarray:
    """A plot reduced with PIL's area-averaging filter (fast, no aliasing) to at most THUMBNAIL_PIXELS."""
    with Image.open(path) as image:
        image.thumbnail(THUMBNAIL_PIXELS, Image.Resampling.BOX)
        return np.asarray(image.convert("RGB"))


def format_cell(value: float | int | None) -> str:
    """A QC1 value for the table: NULL as an em dash, floats with 5 significant digits."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.5g}"


def write_cover(result: SetResult, plots: dict[str, Path], out_path: Path, dpi: int = 110) -> Path:
    """Write the cover sheet PNG (A4 landscape) of one set."""
    fig = Figure(figsize=(11.69, 8.27))
    cert = result.certification
    fig.text(0.03, 0.965, f"{result.profile.upper()} flat QC — set {result.set_id}", fontsize=16, weight="bold",
             va="top")
    keys = [
        ("night", result.night), ("profile", result.profile), ("setting", result.setting_key),
        ("raw type", result.raw_type), ("N raws", str(result.n_raw)),
        ("DIT x NDIT", f"{result.dit:g} s x {result.ndit}"),
        ("window", f"NY {result.window_ny}, STARTY {result.window_starty}"), ("reference", result.reference_note),
    ]
    if profile_named(result.profile).window_ny_key is None:  # no windowed read-out on this instrument
        keys = [(name, value) for name, value in keys if name != "window"]
    for row, (name, value) in enumerate(keys):
        fig.text(0.03, 0.915 - 0.024 * row, f"{name}:", fontsize=9, weight="bold", va="top")
        fig.text(0.12, 0.915 - 0.024 * row, value, fontsize=9, va="top")
    colour = VERDICT_COLOURS[cert.verdict]
    fig.text(0.60, 0.955, cert.verdict.replace("_", " ").upper(), fontsize=26, weight="bold", color="white",
             va="top", bbox={"facecolor": colour, "edgecolor": colour, "boxstyle": "round,pad=0.3"})
    lines = [f"• {r}" for r in cert.reasons] + [f"· {n}" for n in cert.notes]
    shown = lines[:9] + ([f"… and {len(lines) - 9} more"] if len(lines) > 9 else [])
    for row, line in enumerate(shown or ["all checks passed"]):
        fig.text(0.60, 0.875 - 0.021 * row, line, fontsize=8.5, va="top",
                 color=colour if line.startswith("•") else "black")

    ax = fig.add_axes((0.16, 0.30, 0.81, 0.37))
    ax.axis("off")
    names = list(QC1_NAMES) + list(result.detectors[0].bpm_bits if result.detectors else ())
    table = ax.table(
        cellText=[[format_cell(d.qc1()[name]) for d in result.detectors] for name in names],
        rowLabels=names, colLabels=[f"det {d.detector}" for d in result.detectors],
        loc="center", cellLoc="right",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1.0, 1.08 if len(names) <= len(QC1_NAMES) else 0.95)  # CRIRES+ has 5 more rows (BPM bits)
    failing = {(c.name, c.detector) for c in cert.checks if c.passed is False}
    for (name, det) in failing:
        col = [d.detector for d in result.detectors].index(det)
        table[names.index(name) + 1, col].set_facecolor("#ffd7d7")

    thumbs = [k for k in ("flat1", "flat2", "flat3", "flat4", "flat5") if k in plots]
    for index, key in enumerate(thumbs):
        tax = fig.add_axes((0.03 + index * 0.19, 0.03, 0.18, 0.23))
        tax.imshow(thumbnail(plots[key]), interpolation="antialiased")
        tax.set_title(key, fontsize=9)
        tax.axis("off")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return out_path
