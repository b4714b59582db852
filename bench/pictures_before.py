"""BASELINE for bench/bench_pictures.py: the picture code as it was before issue 13 (matplotlib figures per
picture), kept only to measure the speed-up in the same run. Not used by the service.

``qc/plots.py`` and ``qc/cover.py`` of commit 34d316b, unchanged except for: both files in one module, and
:func:`old_views`, which gives the new display views the fields the old code read (``bpm`` 0/1, ``bpm_diff``
+1/-1/0 and the normalised histograms, computed here from the display images).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec
from PIL import Image

from qc.certify import sentence
from qc.display import PNG_OPTIONS
from qc.profiles import profile_named
from qc.records import QC1_NAMES, DetectorView, SetResult

GREY_SHADE = ListedColormap([(0.5, 0.5, 0.5, 0.55)])
"""Semi-transparent grey for the vignetted area."""


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


def title_of(result: SetResult) -> str:
    return (f"{result.profile.upper()} flat QC  set {result.set_id}  night {result.night}  {result.setting_key}  "
            f"{result.raw_type}  N = {result.n_raw}")


def message_panel(fig: Figure, cell: SubplotSpec, text: str) -> None:
    """A framed panel that says why something is not shown."""
    ax = fig.add_subplot(cell)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, wrap=True, transform=ax.transAxes)
    ax.set_facecolor("#f4f4f4")


def mosaic_row(fig: Figure, cell: SubplotSpec, views: Sequence[DetectorView],
               image_of: Callable[[DetectorView], np.ndarray], title: str, cbar_label: str,
               cmap: str = "viridis", limits: tuple[float, float] | None = None,
               crop: Callable[[np.ndarray], tuple[slice, slice]] | None = None,
               shade_vignetted: bool = False) -> None:
    """All detectors side by side in one axes (x offset per detector, gaps between), one colour scale and bar.

    x is the column on each detector, shifted by the detector's slot; y is the row on the full detector.
    """
    grid = cell.subgridspec(1, 2, width_ratios=[1.0, 0.012], wspace=0.02)
    ax = fig.add_subplot(grid[0, 0])
    images = [image_of(v) for v in views]
    vmin, vmax = limits or percentile_limits(images)
    mappable, centres, slot = None, [], None
    for index, (view, image) in enumerate(zip(views, images, strict=True)):
        ny, nx = image.shape
        rows, cols = crop(image) if crop else (slice(0, ny), slice(0, nx))
        width = (cols.stop - cols.start) * view.block
        slot = slot or width * 1.06
        x0 = index * slot
        y0 = (view.starty - 1) + rows.start * view.block
        extent = (x0, x0 + width, y0, y0 + (rows.stop - rows.start) * view.block)
        mappable = ax.imshow(image[rows, cols], origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, extent=extent,
                             aspect="auto", interpolation="nearest")
        if shade_vignetted:
            blocked = np.where(view.unvignetted[rows, cols], np.nan, 1.0)
            ax.imshow(blocked, origin="lower", cmap=GREY_SHADE, extent=extent, aspect="auto",
                      interpolation="nearest")
        centres.append(x0 + width / 2)
        ax.text(x0 + width / 2, 1.01, f"det {view.detector}", transform=ax.get_xaxis_transform(),
                ha="center", va="bottom", fontsize=10)
    first = views[0]
    full_rows = crop(images[0])[0] if crop else slice(0, images[0].shape[0])
    ax.set_xlim(0, slot * (len(views) - 1) + (slot / 1.06))
    ax.set_ylim((first.starty - 1) + full_rows.start * first.block if crop else 0,
                (first.starty - 1) + full_rows.stop * first.block if crop
                else max((v.starty - 1) + image_of(v).shape[0] * v.block for v in views))
    ax.set_xticks(centres, [f"columns {(crop(images[0])[1].start if crop else 0) * first.block}.."
                            f"{(crop(images[0])[1].stop if crop else images[0].shape[1]) * first.block - 1}"]
                  * len(views), fontsize=7)
    ax.set_ylabel("detector row [px]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=12, weight="bold", pad=16)
    cax = fig.add_subplot(grid[0, 1])
    fig.colorbar(mappable, cax=cax).set_label(cbar_label, fontsize=8)
    cax.tick_params(labelsize=7)


def central(image: np.ndarray) -> tuple[slice, slice]:
    """The central quarter (half of each axis) of an image."""
    ny, nx = image.shape
    return slice(ny // 4, ny // 4 + max(ny // 2, 1)), slice(nx // 4, nx // 4 + max(nx // 2, 1))


def _figure(result: SetResult, rows: int) -> tuple[Figure, list[SubplotSpec]]:
    n = len(result.views)
    fig = Figure(figsize=(3.6 * n + 1.5, 3.6 * rows + 0.9))
    fig.suptitle(title_of(result), fontsize=13)
    grid = fig.add_gridspec(rows, 1, hspace=0.45, top=0.86 if rows == 2 else 0.80, bottom=0.08,
                            left=0.05, right=0.94)
    return fig, [grid[i, 0] for i in range(rows)]


def _image_pair(result: SetResult, path: Path, dpi: int, crop: Callable | None, suffix: str) -> Path:
    fig, (top, bottom) = _figure(result, 2)
    mosaic_row(fig, top, result.views, lambda v: v.master, f"current master flat{suffix}", "normalised flux",
               crop=crop)
    if all(v.ratio is not None for v in result.views):
        mosaic_row(fig, bottom, result.views, lambda v: v.ratio, f"current flat / reference flat{suffix}",
                   "ratio", cmap="RdBu_r",
                   limits=percentile_limits([v.ratio for v in result.views], symmetric_about=1.0), crop=crop)
    else:
        message_panel(fig, bottom, f"current / reference: {result.reference_note}")
    fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path


def flat3(result: SetResult, path: Path, dpi: int) -> Path:
    fig, (top, bottom) = _figure(result, 2)
    mosaic_row(fig, top, result.views, lambda v: v.bpm, "current bad pixel map", "bad (block max)",
               cmap="gray_r", limits=(0.0, 1.0))
    if all(v.bpm_diff is not None for v in result.views):
        mosaic_row(fig, bottom, result.views, lambda v: v.bpm_diff,
                   "current map - reference map (red: new bad, blue: fixed)", "difference", cmap="RdBu_r",
                   limits=(-1.0, 1.0))
    else:
        message_panel(fig, bottom, f"current - reference map: {result.reference_note}")
    fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path


def flat4(result: SetResult, path: Path, dpi: int) -> Path:
    n = len(result.views)
    fig = Figure(figsize=(3.6 * n + 1.5, 4.8))
    fig.suptitle(title_of(result), fontsize=13)
    grid = fig.add_gridspec(1, 1, top=0.78, bottom=0.12, left=0.05, right=0.94)
    if all(v.snr is not None for v in result.views):
        mosaic_row(fig, grid[0, 0], result.views, lambda v: v.snr,
                   "S/N per pixel (grey: area that can be vignetted or contaminated)", "S/N",
                   cmap="magma", shade_vignetted=True)
    else:
        message_panel(fig, grid[0, 0], f"S/N not available: fewer than 3 flats (N = {result.n_raw})")
    fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path


def flat5(result: SetResult, path: Path, dpi: int) -> Path:
    """Per detector: cut through the mean raw, cuts of master and reference, histograms and the comparison."""
    n = len(result.views)
    fig = Figure(figsize=(3.6 * n + 1.0, 10.0))
    fig.suptitle(title_of(result) + "\ncuts (median of the central rows) and histograms", fontsize=12)
    grid = fig.add_gridspec(3, n, hspace=0.45, wspace=0.3, top=0.88, bottom=0.07, left=0.06, right=0.98)
    for col, (view, qc) in enumerate(zip(result.views, result.detectors, strict=True)):
        x = np.arange(view.raw_cut.size)
        ax = fig.add_subplot(grid[0, col])
        ax.plot(x, view.raw_cut, lw=0.6, color="black")
        ax.set_title(f"det {view.detector}: raw (mean of {result.n_raw})", fontsize=9)
        ax.set_ylabel("ADU", fontsize=8)
        ax = fig.add_subplot(grid[1, col])
        ax.plot(x, view.master_cut, lw=0.6, label="master")
        if view.ref_cut is not None:
            ax.plot(x, view.ref_cut, lw=0.6, alpha=0.8, label="reference")
        ax.set_ylim(*percentile_limits([view.master_cut, view.ref_cut], 0.5, 99.5))
        ax.set_title("master vs reference" if view.ref_cut is not None else "master (no reference)", fontsize=9)
        ax.set_xlabel("column [px]", fontsize=8)
        ax.set_ylabel("normalised", fontsize=8)
        ax.legend(fontsize=7, loc="lower center")
        ax = fig.add_subplot(grid[2, col])
        counts, edges = view.master_hist
        ax.stairs(counts, edges, label="master")
        if view.ref_hist is not None:
            ax.stairs(*view.ref_hist, label="reference")
        ax.set_yscale("log")
        ax.minorticks_off()
        ax.set_xlabel("normalised value", fontsize=8)
        ax.set_ylabel("pixels", fontsize=8)
        text = (f"master/ref: median {qc.ref_ratio_median:.4f}\nstd {qc.ref_ratio_std:.4f}"
                if qc.ref_ratio_median is not None and qc.ref_ratio_std is not None else result.reference_note)
        ax.text(0.02, 0.97, text, transform=ax.transAxes, va="top", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        ax.legend(fontsize=7, loc="upper right")
        for axis in fig.axes[-3:]:
            axis.tick_params(labelsize=7)
    fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path


def write_plots(result: SetResult, out_dir: Path, dpi: int = 100) -> dict[str, Path]:
    """Draw ``flat1.png`` .. ``flat5.png`` into ``out_dir``; returns ``{"flat1": path, ...}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return {
        "flat1": _image_pair(result, out_dir / "flat1.png", dpi, None, ""),
        "flat2": _image_pair(result, out_dir / "flat2.png", dpi, central, " (central regions)"),
        "flat3": flat3(result, out_dir / "flat3.png", dpi),
        "flat4": flat4(result, out_dir / "flat4.png", dpi),
        "flat5": flat5(result, out_dir / "flat5.png", dpi),
    }


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
    lines = [f"• {sentence(r)}" for r in cert.reasons] + [f"· {sentence(n)}" for n in cert.notes]
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


@dataclass
class OldView:
    """The fields of a display view the baseline drawing code reads."""

    detector: int
    block: int
    starty: int
    master: np.ndarray
    ratio: np.ndarray | None
    bpm: np.ndarray
    bpm_diff: np.ndarray | None
    snr: np.ndarray | None
    unvignetted: np.ndarray
    raw_cut: np.ndarray
    master_cut: np.ndarray
    ref_cut: np.ndarray | None
    master_hist: tuple[np.ndarray, np.ndarray]
    ref_hist: tuple[np.ndarray, np.ndarray] | None


def old_view(view: DetectorView) -> OldView:
    """A new display view in the old shape (histograms of the display images instead of the full ones)."""
    def hist(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.histogram(image[np.isfinite(image)], bins=120, range=(0.0, 2.0))

    changes = view.bpm_changes
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = view.master / view.ratio if view.ratio is not None else None
    return OldView(
        view.detector, view.block, view.starty, view.master, view.ratio, (view.bpm != 0).astype(np.float32),
        np.where(changes & 1, 1.0, np.where(changes & 2, -1.0, 0.0)) if changes is not None else None,
        view.snr, view.unvignetted, view.raw_cut, view.master_cut, view.ref_cut, hist(view.master),
        hist(ref) if ref is not None else None)


def baseline_result(result: SetResult) -> SetResult:
    """``result`` with its views in the old shape (convert once, outside the timed part)."""
    return replace(result, views=[old_view(v) for v in result.views])  # type: ignore[misc]


def draw_pictures_before(result: SetResult, out: Path) -> dict[str, Path]:
    """The old ``draw_pictures``: flat1..flat5 and the cover with matplotlib, of a :func:`baseline_result`."""
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(result, out)
    plots["cover"] = write_cover(result, plots, out / "cover.png")
    return plots
