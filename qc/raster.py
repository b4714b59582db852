"""A small raster drawing layer for the per-set pictures: a PIL canvas, data panels with fixed ticks, colour maps as
look-up tables.

Matplotlib's figure machinery (tick locators, per-artist text layout, Agg paths) cost ~0.4 s per picture although
the pictures are only images, lines, ticks and text; here they are drawn straight onto a PIL image. The finished RGB
image is stored as a 256-colour palette PNG (quantising and encoding take ~25 ms instead of ~130 ms for a noisy map).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
"""DejaVu fonts shipped with matplotlib (the same faces as the trend plots)."""
PNG_LEVEL = 1
"""zlib level of the palette PNGs: level 1 is as small as 3 for noisy maps and twice as fast."""
Colour = tuple[int, int, int]
BLACK: Colour = (0, 0, 0)
WHITE: Colour = (255, 255, 255)
GREY: Colour = (110, 110, 110)
RED: Colour = (200, 30, 30)
GREEN: Colour = (26, 127, 55)
NAN_COLOUR: Colour = (215, 215, 215)
"""Colour of a pixel without value (NaN) in continuous images."""


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans of ``size`` px (loaded once per process)."""
    return ImageFont.truetype(str(FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


@lru_cache(maxsize=16)
def colour_table(name: str, n: int = 256) -> np.ndarray:
    """(n, 3) uint8 colours of the matplotlib colour map ``name``."""
    return (matplotlib.colormaps[name](np.linspace(0.0, 1.0, n))[:, :3] * 255 + 0.5).astype(np.uint8)


def colourise(data: np.ndarray, cmap: str, vmin: float, vmax: float, nan: Colour = NAN_COLOUR) -> np.ndarray:
    """RGB uint8 image of ``data`` through ``cmap`` on [vmin, vmax] (clipped; NaN in the ``nan`` colour)."""
    table = colour_table(cmap)
    scale = (len(table) - 1) / (vmax - vmin) if vmax > vmin else 0.0
    with np.errstate(invalid="ignore"):
        index = np.clip((data - vmin) * scale + 0.5, 0, len(table) - 1)
    finite = np.isfinite(index)
    rgb = table[np.where(finite, index, 0).astype(np.intp)]
    rgb[~finite] = nan
    return rgb


def fit_max(codes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize an integer image to ``shape``: each output pixel is the max of the input pixels it covers
    (nearest when enlarging), so no non-zero pixel disappears when shrinking."""
    rows = (np.arange(shape[0]) * codes.shape[0]) // shape[0]
    cols = (np.arange(shape[1]) * codes.shape[1]) // shape[1]
    return np.maximum.reduceat(np.maximum.reduceat(codes, rows, axis=0), cols, axis=1)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Boolean dilation by a (2 radius + 1)^2 square, so a single pixel becomes a visible square."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        for shift in range(1, radius + 1):
            lead = [slice(None)] * 2
            trail = [slice(None)] * 2
            lead[axis], trail[axis] = slice(shift, None), slice(None, -shift)
            grown[tuple(lead)] |= out[tuple(trail)]
            grown[tuple(trail)] |= out[tuple(lead)]
        out = grown
    return out


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (or on the image border)."""
    inner = np.zeros_like(mask)
    inner[1:-1, 1:-1] = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return mask & ~inner


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) within [low, high], about ``target`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    count = math.floor(high / step + 1e-9) - first + 1
    return [round((first + i) * step, 12) for i in range(count)]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick value with as many decimals as the tick spacing needs (integers without a point)."""
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False) if b != a), default=abs(value) or 1.0)
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > 1e-9 * max(1.0, abs(step)):
        decimals += 1
    return f"{value:.{decimals}f}"


class Canvas:
    """An RGB image with text helpers; ``save`` writes a palette PNG."""

    def __init__(self, width: int, height: int) -> None:
        self.image = Image.new("RGB", (width, height), WHITE)
        self.draw = ImageDraw.Draw(self.image)

    @property
    def width(self) -> int:
        return self.image.width

    def text(self, x: float, y: float, text: str, size: int = 11, anchor: str = "la", bold: bool = False,
             fill: Colour = BLACK) -> None:
        self.draw.text((x, y), text, font=font(size, bold), anchor=anchor, fill=fill)

    def label(self, x: float, y: float, text: str, colour: Colour, anchor: str) -> None:
        """Bold 10 px text on a white box, readable over data."""
        box = self.draw.textbbox((x, y), text, font=font(10, True), anchor=anchor)
        self.draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=WHITE)
        self.text(x, y, text, size=10, anchor=anchor, bold=True, fill=colour)

    def vertical_text(self, x: float, y: float, text: str, size: int = 11) -> None:
        """Text rotated by 90 degrees, centred on (x, y)."""
        label = _rotated_label(text, size)
        self.image.paste(label, (round(x - label.width / 2), round(y - label.height / 2)),
                         mask=label.getchannel("A"))

    def paste(self, rgb: np.ndarray, x: int, y: int) -> None:
        self.image.paste(Image.fromarray(rgb), (x, y))

    def save(self, path: Path) -> Path:
        """Quantise to 256 colours and write the PNG (atomically: temporary name, then rename)."""
        tmp = path.with_name(f".{path.name}.tmp")
        palette_image(self.image).save(tmp, format="png", compress_level=PNG_LEVEL)
        tmp.replace(path)
        return path


def palette_image(image: Image.Image) -> Image.Image:
    """256-colour version of an RGB image (fast octree); palette entries within 6 of pure white or black are
    snapped to it, as the octree's averaging turns the white background into (254, 254, 254)."""
    quantised = image.quantize(256, method=Image.Quantize.FASTOCTREE)
    palette = np.array(quantised.getpalette() or [], dtype=np.int16).reshape(-1, 3)
    palette[(palette >= 249).all(axis=1)] = 255
    palette[(palette <= 6).all(axis=1)] = 0
    quantised.putpalette(palette.astype(np.uint8).ravel().tolist())
    return quantised


@lru_cache(maxsize=64)
def _rotated_label(text: str, size: int) -> Image.Image:
    box = font(size).getbbox(text)
    label = Image.new("RGBA", (int(box[2]) + 2, size + 4), (0, 0, 0, 0))
    ImageDraw.Draw(label).text((1, 1), text, font=font(size), fill=BLACK + (255,))
    return label.rotate(90, expand=True)


def resize_box(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-averaged (shrinking) or nearest (enlarging) resize of an RGB image."""
    image = Image.fromarray(rgb)
    shrink = width <= rgb.shape[1] and height <= rgb.shape[0]
    return np.array(image.resize((width, height), Image.Resampling.BOX if shrink else Image.Resampling.NEAREST))


@dataclass
class Panel:
    """A rectangle of the canvas with data coordinates: x to the right, y upwards (log10 if ``ylog``).

    ``hlines``/``vlines`` record the reference lines drawn (value, label), for the reader and the tests.
    """

    canvas: Canvas
    box: tuple[int, int, int, int]
    """left, top, right, bottom [px]; the frame is drawn on these edges."""
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    ylog: bool = False
    hlines: list[tuple[float, str]] = field(default_factory=list)
    vlines: list[tuple[float, str]] = field(default_factory=list)

    def px(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        left, top, right, bottom = self.box
        y0, y1 = self.ylim
        yv = np.asarray(y, dtype=np.float64)
        if self.ylog:
            with np.errstate(divide="ignore", invalid="ignore"):
                yv, y0, y1 = np.log10(yv), math.log10(y0), math.log10(y1)
        xs = left + (np.asarray(x, dtype=np.float64) - self.xlim[0]) / (self.xlim[1] - self.xlim[0]) * (right - left)
        ys = bottom - (yv - y0) / (y1 - y0) * (bottom - top)
        return xs, ys

    def line(self, x: np.ndarray, y: np.ndarray, colour: Colour = BLACK, width: int = 1) -> None:
        """A polyline clipped to the panel; NaN values break it."""
        xs, ys = self.px(x, y)
        left, top, right, bottom = self.box
        ys = np.clip(ys, top, bottom)
        good = np.isfinite(xs) & np.isfinite(ys)
        breaks = np.flatnonzero(np.diff(good.astype(np.int8)) != 0) + 1
        for start, stop in zip(np.r_[0, breaks], np.r_[breaks, good.size], strict=True):
            if good[start] and stop - start > 1:
                points = np.column_stack([np.clip(xs[start:stop], left, right), ys[start:stop]])
                self.canvas.draw.line(points.ravel().tolist(), fill=colour, width=width)

    def stairs(self, counts: np.ndarray, edges: np.ndarray, colour: Colour = BLACK) -> None:
        """A histogram as steps (empty bins at the bottom of a log axis)."""
        floor = self.ylim[0]
        heights = np.maximum(counts.astype(np.float64), floor)
        self.line(np.repeat(edges, 2)[1:-1], np.repeat(heights, 2), colour)

    def hline(self, y: float, colour: Colour, label: str = "", width: int = 2) -> None:
        """A dashed horizontal reference line with an optional label above it at the right."""
        left, top, right, bottom = self.box
        _, (py,) = self.px(0.0, np.array([y]))
        py = float(np.clip(py, top, bottom))
        for x in range(left, right, 10):
            self.canvas.draw.line([x, py, min(x + 6, right), py], fill=colour, width=width)
        if label:  # above the line, or below it when the line runs along the top of the panel
            above = py - top > 16
            self.canvas.label(right - 4, py - 3 if above else py + 4, label, colour, anchor="rd" if above else "rt")
        self.hlines.append((y, label))

    def vline(self, x: float, colour: Colour, label: str = "", width: int = 2) -> None:
        """A dashed vertical reference line with an optional label at its top."""
        left, top, right, bottom = self.box
        (px,), _ = self.px(np.array([x]), 1.0 if self.ylog else 0.0)
        px = float(np.clip(px, left, right))
        for y in range(top, bottom, 10):
            self.canvas.draw.line([px, y, px, min(y + 6, bottom)], fill=colour, width=width)
        if label:
            self.canvas.label(px - 4, top + 4, label, colour, anchor="rt")
        self.vlines.append((x, label))

    def frame(self, xticks: Sequence[float] = (), yticks: Sequence[float] = (), size: int = 9,
              colour: Colour = BLACK) -> None:
        """The frame, outward ticks and their labels (y labels in powers of ten on a log axis)."""
        left, top, right, bottom = self.box
        draw = self.canvas.draw
        draw.rectangle([left, top, right, bottom], outline=colour)
        xs, _ = self.px(np.asarray(xticks, dtype=np.float64), 1.0)
        for value, x in zip(xticks, xs, strict=True):
            draw.line([x, bottom, x, bottom + 4], fill=BLACK)
            self.canvas.text(x, bottom + 6, tick_label(value, xticks), size=size, anchor="mt")
        _, ys = self.px(0.0, np.asarray(yticks, dtype=np.float64))
        for value, y in zip(yticks, ys, strict=True):
            draw.line([left - 4, y, left, y], fill=BLACK)
            text = power_of_ten(value) if self.ylog else tick_label(value, yticks)
            self.canvas.text(left - 6, y, text, size=size, anchor="rm")

    def title(self, text: str, size: int = 11, bold: bool = False, fill: Colour = BLACK) -> None:
        left, top, right, _ = self.box
        self.canvas.text((left + right) / 2, top - 4, text, size=size, anchor="md", bold=bold, fill=fill)

    def message(self, text: str, size: int = 14) -> None:
        """Grey panel saying why nothing is shown."""
        left, top, right, bottom = self.box
        self.canvas.draw.rectangle([left, top, right, bottom], fill=(244, 244, 244), outline=GREY)
        self.canvas.text((left + right) / 2, (top + bottom) / 2, text, size=size, anchor="mm")


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(value: float) -> str:
    """A power of ten as ``10`` with a superscript exponent, e.g. ``10³``."""
    return "10" + str(round(math.log10(value))).translate(SUPERSCRIPTS)


def log_ticks(low: float, high: float) -> list[float]:
    """Powers of ten within [low, high] (at most six, evenly thinned)."""
    powers = list(range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1))
    step = max(1, math.ceil(len(powers) / 6))
    return [10.0**p for p in powers[::step]]
