"""Per-set pictures ``flat1`` .. ``flat5`` (seed QC1PLOTS; contract 7) and ``flat6`` (the last good set, contract
9), drawn from a :class:`SetResult` and the QC limits, on the raster layer of :mod:`qc.raster`.

Every picture shows the limits and numbers it is judged by: flat4 on a fixed S/N scale [0, 2 x limit] with the limit
on the colour bar, a contour where the local median S/N is at or below it and the median S/N per detector; flat5 the
max-flux limit on the raw cuts and the raw-ADU histogram, a cut through the reference and master/reference as a
ratio; flat3 bad pixels grown to be visible, discrete colours with a legend and counts per detector. Detectors are
side by side in full-detector row coordinates (windowed read-outs sit at their rows).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from qc.config import QCConfig
from qc.profiles import InstrumentProfile, profile_named
from qc.raster import (
    BLACK,
    GREEN,
    GREY,
    NAN_COLOUR,
    RED,
    Canvas,
    Colour,
    Panel,
    colour_table,
    colourise,
    dilate,
    fit_max,
    font,
    log_ticks,
    nice_ticks,
    outline,
    resize_box,
    tick_label,
)
from qc.records import CheckResult, DetectorView, SetResult

PANEL_WIDTH = 340
"""Width of one detector in the image pictures [px]; the height follows the detector's aspect."""
LEFT, GAP, BAR_AREA = 72, 16, 110
"""Left margin (row ticks), gap between detectors and room for the colour bar at the right [px]."""
BAD_PIXEL_RADIUS = 2
"""Bad pixels and BPM changes are grown by this many display pixels on each side (a 5 x 5 square)."""
SHADE: Colour = (128, 128, 128)
"""Grey blended over the vignetted area (55 %)."""
RATIO_MIN_HALF_RANGE = 1e-4
"""The master / reference cut spans at least 1 +- this (identical frames would otherwise give a 1e-6 axis)."""
ORANGE: Colour = (230, 140, 0)
BLUE: Colour = (30, 90, 200)


@dataclass(frozen=True)
class ColourScale:
    """A continuous colour scale and its bar: ``marks`` are limits drawn across the bar and listed in ``ticks``."""

    cmap: str
    vmin: float
    vmax: float
    label: str
    marks: tuple[tuple[float, str], ...] = ()

    @property
    def ticks(self) -> list[float]:
        return bar_ticks(self.vmin, self.vmax, [value for value, _ in self.marks])


@dataclass(frozen=True)
class BpmClass:
    """A colour for BPM pixels with any of ``bits`` set; ``grow`` pixels are dilated to stay visible."""

    label: str
    bits: int
    colour: Colour
    grow: bool = True


@dataclass
class Picture:
    """A drawn picture: the canvas and, for readers and tests, its named panels and colour scales."""

    canvas: Canvas
    panels: dict[str, Panel] = field(default_factory=dict)
    scales: dict[str, ColourScale] = field(default_factory=dict)


def percentile_limits(images: Sequence[np.ndarray | None], low: float = 1.0, high: float = 99.0,
                      symmetric_about: float | None = None) -> tuple[float, float]:
    """Display limits from the given percentiles of all finite values (symmetric about a value if asked)."""
    values = np.concatenate([im[np.isfinite(im)].ravel() for im in images if im is not None] or [np.zeros(1)])
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [low, high])
    if symmetric_about is not None:
        half = max(abs(hi - symmetric_about), abs(symmetric_about - lo), 1e-6)
        return symmetric_about - half, symmetric_about + half
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)


def snr_scale(limit: float) -> tuple[float, float]:
    """The fixed S/N colour range: 0 to twice the limit, whatever the data (the limit sits mid-scale)."""
    return 0.0, 2.0 * limit


def bar_ticks(vmin: float, vmax: float, marks: Sequence[float], target: int = 5) -> list[float]:
    """Round ticks on [vmin, vmax] plus every mark; round ticks closer than 8 % of the range to a mark give way."""
    room = 0.08 * (vmax - vmin)
    ticks = [t for t in nice_ticks(vmin, vmax, target) if all(abs(t - m) >= room for m in marks)]
    return sorted({*ticks, *(m for m in marks if vmin <= m <= vmax)})


def flux_axis_top(limit: float, *values: np.ndarray) -> float:
    """Upper end of an ADU axis that always shows the limit and the data: 8 % above the larger of the two."""
    highest = max((float(np.nanmax(v)) for v in values if v.size and np.isfinite(v).any()), default=0.0)
    return 1.08 * max(limit, highest, 1.0)


def bpm_classes(profile: InstrumentProfile) -> list[BpmClass]:
    """Colour classes of a BPM, painted in this order (later on top). CRIRES+: one per bit, the out-of-order bit
    as a light background that is not grown (it covers half the detector); a 0/1 BPM: one class, any non-zero."""
    if not profile.bpm_bits:
        return [BpmClass("bad", -1, BLACK)]
    bits = dict(profile.bpm_bits)
    colours: dict[str, tuple[Colour, bool]] = {
        "outoforder": ((228, 228, 228), False), "edge": ((120, 120, 120), False),
        "detlin": (ORANGE, True), "flat": (BLUE, True), "dark": (RED, True),
    }
    order = [name for name in colours if name in bits] + [name for name in bits if name not in colours]
    return [BpmClass(name, bits[name], *colours.get(name, (BLACK, True))) for name in order]


def class_image(codes: np.ndarray, classes: Sequence[BpmClass], height: int, width: int,
                radius: int = BAD_PIXEL_RADIUS) -> np.ndarray:
    """RGB (row 0 first) of integer codes at ``height`` x ``width``: max-pooled so none is lost, then each class
    painted in order, grown by ``radius`` pixels where the class asks for it."""
    pooled = fit_max(codes, (height, width)) if codes.size else np.zeros((height, width), dtype=np.int32)
    rgb = np.full((height, width, 3), 255, dtype=np.uint8)
    for cls in classes:
        mask = (pooled & cls.bits) != 0
        rgb[dilate(mask, radius) if cls.grow else mask] = cls.colour
    return rgb


def margin_colour(check: CheckResult | None) -> Colour:
    return BLACK if check is None or check.passed is None else GREEN if check.passed else RED


def check_of(result: SetResult, name: str, detector: int) -> CheckResult | None:
    return next((c for c in result.certification.checks if c.name == name and c.detector == detector), None)


def title_of(result: SetResult) -> str:
    return (f"{result.profile.upper()} flat QC  set {result.set_id}  night {result.night}  {result.setting_key}  "
            f"{result.raw_type}  N = {result.n_raw}")


def central(image: np.ndarray) -> tuple[slice, slice]:
    """The central quarter (half of each axis) of an image."""
    ny, nx = image.shape
    return slice(ny // 4, ny // 4 + max(ny // 2, 1)), slice(nx // 4, nx // 4 + max(nx // 2, 1))


Render = Callable[[DetectorView, tuple[slice, slice], int, int], np.ndarray]
"""(view, crop of its display arrays, height, width [px]) -> RGB image, row 0 = lowest detector row."""


class Mosaic:
    """Image pictures: one panel per detector side by side, rows of panels, a colour bar at the right."""

    def __init__(self, result: SetResult, n_rows: int, min_panel_height: int = 0) -> None:
        self.result = result
        self.profile = profile_named(result.profile)
        self.n = len(result.views)
        self.panel_h = max(round(PANEL_WIDTH * self.profile.full_ny / self.profile.nx), min_panel_height)
        self.row_h = self.panel_h + 112
        width = LEFT + self.n * PANEL_WIDTH + (self.n - 1) * GAP + BAR_AREA
        self.picture = Picture(Canvas(width, 48 + n_rows * self.row_h))
        self.picture.canvas.text(width / 2, 12, title_of(result), size=15, anchor="mt")
        self.top = 48

    @property
    def canvas(self) -> Canvas:
        return self.picture.canvas

    def x0(self, index: int) -> int:
        return LEFT + index * (PANEL_WIDTH + GAP)

    def row(self, name: str, title: str, render: Render, captions: Sequence[tuple[str, Colour]],
            scale: ColourScale | None = None, legend: Sequence[tuple[Colour, str]] = (),
            crop: Callable[[np.ndarray], tuple[slice, slice]] | None = None, notes: Sequence[str] = ()) -> None:
        """One row: title, per-detector caption, framed panel with the image at its detector rows, a note under
        each panel, legend."""
        canvas, top = self.canvas, self.top
        canvas.text((self.x0(0) + self.x0(self.n - 1) + PANEL_WIDTH) / 2, top + 4, title, size=14, anchor="mt",
                    bold=True)
        panel_top = top + 46
        for index, (view, (caption, colour)) in enumerate(zip(self.result.views, captions, strict=True)):
            slices = crop(view.master) if crop else (slice(0, view.master.shape[0]), slice(0, view.master.shape[1]))
            rows, cols = slices
            window_low = view.starty - 1
            window_high = window_low + self.result.window_ny
            shown_low = window_low + rows.start * view.block if crop else window_low
            shown_high = min(window_low + rows.stop * view.block, window_high) if crop else window_high
            ylim = (float(shown_low), float(shown_high)) if crop else (0.0, float(self.profile.full_ny))
            box = (self.x0(index), panel_top, self.x0(index) + PANEL_WIDTH, panel_top + self.panel_h)
            panel = Panel(canvas, box, (cols.start * view.block, cols.stop * view.block), ylim)
            _, (y_high, y_low) = panel.px(0.0, np.array([shown_high, shown_low], dtype=np.float64))
            height = max(round(y_low) - round(y_high), 1)
            rgb = render(view, slices, height, PANEL_WIDTH)
            canvas.paste(np.ascontiguousarray(rgb[::-1]), box[0], round(y_high))
            ticks = nice_ticks(*ylim, 4) if index == 0 else []
            panel.frame(yticks=ticks)
            canvas.text(box[0] + PANEL_WIDTH / 2, panel_top - 5, caption, size=11, anchor="md", fill=colour)
            canvas.text(box[0] + PANEL_WIDTH / 2, box[3] + 4,
                        f"det {view.detector}: columns {cols.start * view.block}..{cols.stop * view.block - 1}",
                        size=9, anchor="mt", fill=GREY)
            if notes:
                canvas.text(box[0] + PANEL_WIDTH / 2, box[3] + 20, notes[index], size=10, anchor="mt")
            self.picture.panels[f"{name} {view.detector}"] = panel
        canvas.vertical_text(LEFT - 52, panel_top + self.panel_h / 2, "detector row [px]", size=10)
        if scale is not None:
            self.colour_bar(name, scale, panel_top)
        x, y = self.x0(0), panel_top + self.panel_h + (42 if notes else 24)
        for colour, label in legend:
            canvas.draw.rectangle([x, y, x + 12, y + 12], fill=colour, outline=BLACK)
            canvas.text(x + 17, y + 6, label, size=10, anchor="lm")
            x += 30 + round(canvas.draw.textlength(label, font=font(10)))
        self.top += self.row_h

    def colour_bar(self, name: str, scale: ColourScale, top: int) -> None:
        """Vertical bar right of the panels: ticks at round values and at each mark, marks drawn across it."""
        canvas = self.canvas
        left = self.x0(self.n - 1) + PANEL_WIDTH + 14
        box = (left, top, left + 14, top + self.panel_h)
        gradient = colour_table(scale.cmap)[::-1]
        canvas.paste(resize_box(gradient[:, None, :].repeat(14, axis=1), 14, self.panel_h), left, top)
        bar = Panel(canvas, box, (0.0, 1.0), (scale.vmin, scale.vmax))
        canvas.draw.rectangle(list(box), outline=BLACK)
        ticks = scale.ticks
        _, ys = bar.px(0.0, np.asarray(ticks))
        marks = dict(scale.marks)
        for value, y in zip(ticks, ys, strict=True):
            mark = value in marks
            canvas.draw.line([box[0] - (4 if mark else 0), y, box[2] + 4, y], fill=BLACK, width=3 if mark else 1)
            canvas.text(box[2] + 6, y, tick_label(value, ticks) + (f" {marks[value]}" if mark else ""), size=9,
                        anchor="lm", bold=mark)
        canvas.vertical_text(box[2] + 76, top + self.panel_h / 2, scale.label, size=10)
        self.picture.scales[name] = scale

    def message(self, title: str, text: str) -> None:
        """A row that says why nothing is shown."""
        self.canvas.text(self.canvas.width / 2, self.top + 4, title, size=14, anchor="mt", bold=True)
        box = (self.x0(0), self.top + 46, self.x0(self.n - 1) + PANEL_WIDTH, self.top + 46 + self.panel_h)
        Panel(self.canvas, box, (0.0, 1.0), (0.0, 1.0)).message(text)
        self.top += self.row_h


def continuous(image_of: Callable[[DetectorView], np.ndarray], scale: ColourScale) -> Render:
    """Colour the display array, then area-average it to the panel size."""
    def render(view: DetectorView, crop: tuple[slice, slice], height: int, width: int) -> np.ndarray:
        return resize_box(colourise(image_of(view)[crop], scale.cmap, scale.vmin, scale.vmax), width, height)
    return render


def image_scales(result: SetResult) -> tuple[ColourScale, ColourScale | None]:
    """The colour scales of flat1 and flat2 (whole detectors, so the central regions share them): master (robust
    scale) and master / reference (symmetric about 1; None without reference)."""
    views = result.views
    master = ColourScale("viridis", *percentile_limits([v.master for v in views]), "normalised flux")
    if not all(v.ratio is not None for v in views):
        return master, None
    return master, ColourScale("RdBu_r", *percentile_limits([v.ratio for v in views], symmetric_about=1.0),
                               "master / reference")


def image_pair(result: SetResult, scales: tuple[ColourScale, ColourScale | None],
               crop: Callable[[np.ndarray], tuple[slice, slice]] | None, suffix: str) -> Picture:
    """flat1 / flat2: master and master / reference on the set's :func:`image_scales`."""
    mosaic = Mosaic(result, 2)
    master, ratio = scales
    mosaic.row("master", f"current master flat{suffix}", continuous(lambda v: v.master, master),
               [(f"rms_master {d.rms_master:.4f}", BLACK) for d in result.detectors], master, crop=crop)
    if ratio is not None:
        mosaic.row("ratio", f"current flat / reference flat{suffix}",
                   continuous(lambda v: v.ratio if v.ratio is not None else v.master, ratio),
                   [(f"median {d.ref_ratio_median:.4f}, std {d.ref_ratio_std:.4f}", BLACK)
                    if d.ref_ratio_median is not None and d.ref_ratio_std is not None else ("", BLACK)
                    for d in result.detectors], ratio, crop=crop)
    else:
        mosaic.message(f"current flat / reference flat{suffix}", f"no ratio: {result.reference_note}")
    return mosaic.picture


def flat3(result: SetResult) -> Picture:
    """BPM in discrete colours per class (CRIRES+ per bit, out of order as a light background) and the changes
    against the reference BPM, each bad pixel grown to a visible square; counts per detector."""
    mosaic = Mosaic(result, 2)
    classes = bpm_classes(mosaic.profile)

    def bpm(view: DetectorView, crop: tuple[slice, slice], height: int, width: int) -> np.ndarray:
        return class_image(view.bpm[crop], classes, height, width)

    def bpm_caption(index: int) -> str:
        qc = result.detectors[index]
        if not qc.bpm_bits:
            return f"{qc.bpm_count} bad pixels"
        shown = [f"{c.label} {qc.bpm_bits.get(f'bpm_{c.label}', 0)}" for c in classes if c.grow]
        return ", ".join(shown)

    grown = f"(grown to {2 * BAD_PIXEL_RADIUS + 1} x {2 * BAD_PIXEL_RADIUS + 1} display px)"
    mosaic.row("bpm", f"current bad pixel map {grown}", bpm,
               [(bpm_caption(i), BLACK) for i in range(len(result.views))],
               legend=[(c.colour, f"bit {c.bits}: {c.label}" if c.bits > 0 else c.label) for c in classes])
    if all(v.bpm_changes is not None for v in result.views):
        changes = [BpmClass("fixed", 2, BLUE), BpmClass("new bad", 1, RED)]

        def change(view: DetectorView, crop: tuple[slice, slice], height: int, width: int) -> np.ndarray:
            assert view.bpm_changes is not None
            return class_image(view.bpm_changes[crop], changes, height, width)

        mosaic.row("changes", f"current map - reference map {grown}", change,
                   [(f"{d.bpm_new} new, {d.bpm_fixed} fixed", RED if d.bpm_new else BLACK)
                    for d in result.detectors],
                   legend=[(RED, "new bad (bad now, good in reference)"),
                           (BLUE, "fixed (good now, bad in reference)")])
    else:
        mosaic.message("current map - reference map", f"no comparison: {result.reference_note}")
    return mosaic.picture


def flat4(result: SetResult, config: QCConfig) -> Picture:
    """S/N per pixel on [0, 2 x limit], limit on the colour bar, a contour around cells whose median S/N is at or
    below the limit, vignetted area shaded, median S/N per detector against the limit."""
    mosaic = Mosaic(result, 1, min_panel_height=250)
    if not all(v.snr is not None for v in result.views):
        mosaic.message("S/N per pixel", f"S/N not available: fewer than {config.min_flats_for_snr} flats "
                                        f"(N = {result.n_raw})")
        return mosaic.picture
    limit = config.snr_limit
    scale = ColourScale("RdBu", *snr_scale(limit), "S/N per pixel", marks=((limit, "limit"),))

    def render(view: DetectorView, crop: tuple[slice, slice], height: int, width: int) -> np.ndarray:
        assert view.snr is not None and view.snr_local is not None
        rgb = resize_box(colourise(view.snr, scale.cmap, scale.vmin, scale.vmax), width, height)
        shaded = fit_max((~view.unvignetted).astype(np.int32), (height, width)) > 0
        rgb[shaded] = (rgb[shaded] * 0.45 + np.array(SHADE) * 0.55).astype(np.uint8)
        cells_h = round(height * view.snr_local.shape[0] * view.snr_cell / result.window_ny)
        below = fit_max((view.snr_local <= limit).astype(np.int32), (cells_h, width))[:height] > 0
        rgb[dilate(outline(below), 1)] = BLACK
        return rgb

    def caption(index: int) -> tuple[str, Colour]:
        qc = result.detectors[index]
        check = check_of(result, "median_snr", qc.detector)
        if qc.median_snr is None:
            return "median S/N not available", BLACK
        relation = "" if check is None else (" > " if check.passed else " <= ") + f"{limit:g}"
        return f"median S/N {qc.median_snr:.1f}{relation}" + (" (not certified)" if check is None else ""), \
            margin_colour(check)

    def note(view: DetectorView) -> str:
        assert view.snr_local is not None
        counted = np.isfinite(view.snr_local)
        return f"{int((view.snr_local[counted] <= limit).sum())} of {int(counted.sum())} cells <= {limit:g}"

    cell = result.views[0].snr_cell
    mosaic.row("snr", f"S/N per pixel (fixed scale {scale.vmin:g} .. {scale.vmax:g})", render,
               [caption(i) for i in range(len(result.views))], scale, notes=[note(v) for v in result.views],
               legend=[(SHADE, "vignetted or contaminated: not counted"),
                       (BLACK, f"contour: {cell} x {cell} px cells whose median S/N <= {limit:g}")])
    return mosaic.picture


def flat5(result: SetResult, config: QCConfig) -> Picture:
    """Per detector: raw cut with the max-flux limit, raw-ADU histogram with the limit, cut through the reference,
    master / reference cut (or the master cut without reference)."""
    n = len(result.views)
    col_w, plot_h, row_h = 300, 150, 218
    width = 80 + n * col_w + (n - 1) * 40 + 20
    picture = Picture(Canvas(width, 70 + 4 * row_h + 10))
    canvas = picture.canvas
    canvas.text(width / 2, 10, title_of(result), size=15, anchor="mt")
    canvas.text(width / 2, 32, "cuts: median of the central fifth of the rows; histogram: every BPM-good pixel "
                               "of every raw", size=11, anchor="mt", fill=GREY)
    limit = config.max_flux_limit
    for col, (view, qc) in enumerate(zip(result.views, result.detectors, strict=True)):
        left = 80 + col * (col_w + 40)
        x = np.arange(view.raw_cut.size, dtype=np.float64)
        xlim = (0.0, float(max(view.raw_cut.size - 1, 1)))
        xticks = nice_ticks(*xlim, 4)
        check = check_of(result, "max_flux", view.detector)

        def box(row: int, left: int = left) -> tuple[int, int, int, int]:
            top = 80 + row * row_h
            return left, top, left + col_w, top + plot_h

        raw = Panel(canvas, box(0), xlim, (0.0, flux_axis_top(limit, view.raw_cut)))
        raw.line(x, view.raw_cut)
        raw.hline(limit, RED, f"max_flux limit {limit:g} ADU")
        raw.frame(xticks, nice_ticks(*raw.ylim, 4))
        raw.title(f"det {view.detector}: mean raw (N = {result.n_raw})", bold=True)
        canvas.text(left + col_w / 2, raw.box[1] - 20, f"max_flux {qc.max_flux:.0f} ADU "
                    f"{'<=' if check is None or check.passed else '>'} {limit:g}", size=10, anchor="md",
                    fill=margin_colour(check))
        picture.panels[f"raw_cut {view.detector}"] = raw

        counts, edges = view.raw_hist
        top_count = max(float(counts.max()) if counts.size else 1.0, 1.0) * 2.0
        hist = Panel(canvas, box(1), (min(0.0, float(edges[0])), flux_axis_top(limit, edges)), (0.5, top_count),
                     ylog=True)
        hist.stairs(counts, edges)
        hist.vline(limit, RED, f"limit {limit:g}")
        hist.frame(nice_ticks(*hist.xlim, 4), log_ticks(1.0, top_count))
        hist.title(f"raw pixels [ADU]: {qc.num_overexp} above {config.overexp_level:g} (worst raw)", size=10)
        picture.panels[f"raw_hist {view.detector}"] = hist

        if view.ref_cut is not None and view.ratio_cut is not None:
            ref = Panel(canvas, box(2), xlim, percentile_limits([view.ref_cut], 0.5, 99.5))
            ref.line(x, view.ref_cut, ORANGE)
            ref.frame(xticks, nice_ticks(*ref.ylim, 4))
            ref.title("cut through the reference (normalised)", size=10)
            lo, hi = percentile_limits([view.ratio_cut], 0.5, 99.5, symmetric_about=1.0)
            lo, hi = min(lo, 1.0 - RATIO_MIN_HALF_RANGE), max(hi, 1.0 + RATIO_MIN_HALF_RANGE)
            ratio = Panel(canvas, box(3), xlim, (lo, hi))
            ratio.hline(1.0, GREY)
            ratio.line(x, view.ratio_cut, BLUE)
            ratio.frame(xticks, nice_ticks(lo, hi, 4))
            ratio.title(f"master / reference: median {qc.ref_ratio_median:.4f}, std {qc.ref_ratio_std:.4f}"
                        if qc.ref_ratio_median is not None and qc.ref_ratio_std is not None
                        else "master / reference", size=10)
        else:
            Panel(canvas, box(2), xlim, (0.0, 1.0)).message("no reference", size=12)
            ratio = Panel(canvas, box(3), xlim, percentile_limits([view.master_cut], 0.5, 99.5))
            ratio.line(x, view.master_cut)
            ratio.frame(xticks, nice_ticks(*ratio.ylim, 4))
            ratio.title(f"master (normalised); {result.reference_note}", size=10)
        picture.panels[f"ratio_cut {view.detector}"] = ratio
        canvas.text(left + col_w / 2, ratio.box[3] + 22, "column [px]", size=10, anchor="mt")
        if col == 0:
            for row, label in enumerate(("raw [ADU]", "pixels", "reference", "normalised")):
                canvas.vertical_text(18, box(row)[1] + plot_h / 2, label, size=10)
    return picture


def flat6(result: SetResult) -> Picture:
    """Current master / master of the last good set of the setting (contract 9), per detector on the rows both read
    (others grey), on a scale symmetric about 1; median and std of the ratio per detector. Without a last good set,
    or when its master could not be read, a message saying so."""
    mosaic = Mosaic(result, 1, min_panel_height=250)
    last = result.last_good
    title = f"set {result.set_id} / last good set {last.set_id} (night {last.night})" if last.set_id \
        else "current master / master of the last good set"
    ratios = [v.prev_ratio for v in result.views]
    if not all(r is not None for r in ratios):
        mosaic.message(title, last.note)
        return mosaic.picture
    scale = ColourScale("RdBu_r", *percentile_limits(ratios, symmetric_about=1.0),
                        "master / master of the last good set")

    def caption(index: int) -> tuple[str, Colour]:
        compared = last.of(result.detectors[index].detector)
        if compared is None or compared.ratio_median is None or compared.ratio_std is None:
            return "no pixel read by both", BLACK
        return f"median {compared.ratio_median:.4f}, std {compared.ratio_std:.4f}", BLACK

    mosaic.row("prev_ratio", title, continuous(lambda v: v.prev_ratio if v.prev_ratio is not None else v.master,
                                               scale),
               [caption(i) for i in range(len(result.views))], scale,
               legend=[(NAN_COLOUR, "no ratio: a row only one of the two masters read, or not finite")])
    return mosaic.picture


def draw_plots(result: SetResult, config: QCConfig) -> dict[str, Picture]:
    """``flat1`` .. ``flat6`` of an analysed set (with views), in memory."""
    scales = image_scales(result)
    return {
        "flat1": image_pair(result, scales, None, ""),
        "flat2": image_pair(result, scales, central, " (central regions)"),
        "flat3": flat3(result),
        "flat4": flat4(result, config),
        "flat5": flat5(result, config),
        "flat6": flat6(result),
    }
