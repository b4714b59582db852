"""Per-set pictures ``flat1.png`` .. ``flat5.png`` (seed QC1PLOTS; contract 7), drawn from a :class:`SetResult`.

Detectors are shown side by side in full-detector row coordinates (windowed read-outs sit at their rows).
Display scaling is robust (1st..99th percentile of finite values). Agg figures only; no pyplot state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec

from qc.display import PNG_OPTIONS
from qc.records import DetectorView, SetResult

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
