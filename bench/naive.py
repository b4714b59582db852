"""A naive flat QC of one set, for benchmarks: what a first notebook would do.

astropy defaults (``fits.getdata`` re-opens the file for every extension), float64 everywhere, every statistic
on fresh copies, and pyplot figures that draw every pixel at full resolution, with the same panels as the
production plots (master, ratio to reference, central regions, BPM and its change, S/N, cuts and histograms)
and a cover with the QC1 table. ``bench_set.py`` times it against the production path in the same run;
``bench_process_night.py`` runs it on every set of a night (``python -m bench.naive PLAN.json``) against
``flatqc process``. Without a reference the reference panels show NaN images; a windowed read-out compares with the
reference rows of its window.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402


def naive_detector(raws: list[Path], master: Path, bpm: Path, ref_master: Path | None, ref_bpm: Path | None,
                   ext: str, rows: slice | None = None) -> tuple[dict, dict]:
    """QC1-like values and the full-resolution images of one detector (``rows``: the reference rows of a window)."""
    frames = [fits.getdata(p, ext).astype(np.float64) for p in raws]
    m = fits.getdata(master, ext).astype(np.float64)
    b = fits.getdata(bpm, ext).astype(np.float64)
    if ref_master is not None and ref_bpm is not None:
        rm = fits.getdata(ref_master, ext).astype(np.float64)[rows or slice(None)]
        rb = fits.getdata(ref_bpm, ext).astype(np.float64)[rows or slice(None)]
    else:
        rm, rb = np.full_like(m, np.nan), np.zeros_like(b)
    stack = np.array(frames)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = stack.mean(axis=0) / stack.std(axis=0, ddof=1) if len(frames) >= 3 else np.full_like(m, np.nan)
        ratio = m / rm
    good = m[np.isfinite(m)]
    norm = good / np.median(good)
    row = {
        "mean_level": np.mean([np.median(f[np.isfinite(f)]) for f in frames]),
        "rms_master": good.std(),
        "badpix": int(np.sum((norm < 0.1) | (norm > 10))),
        "median_snr": float(np.nanmedian(snr[100:-100])),
        "max_flux": max(f[b == 0].max() for f in frames),
        "num_overexp": max(int(np.sum(f[b == 0] > 10000)) for f in frames),
        "bpm_count": int(np.sum(b != 0)),
        "ref_ratio_median": float(np.nanmedian(ratio)),
        "ref_ratio_std": float(np.nanstd(ratio)),
        "bpm_new": int(np.sum((b != 0) & (rb == 0))),
        "bpm_fixed": int(np.sum((b == 0) & (rb != 0))),
    }
    images = {"master": m, "ratio": ratio, "bpm": b, "bpm_diff": b - rb, "snr": snr, "mean": stack.mean(axis=0),
              "ref": rm}
    return row, images


def image_figure(path: Path, rows: list[list[np.ndarray]]) -> None:
    """One figure, one panel per image, one figure pixel per image pixel."""
    ny, nx = rows[0][0].shape
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(nx * len(rows[0]) / 100, ny * len(rows) / 100),
                             dpi=100, squeeze=False)
    for ax_row, images in zip(axes, rows, strict=True):
        for ax, image in zip(ax_row, images, strict=True):
            ax.imshow(image, origin="lower", interpolation="none")
            ax.set_title("detector")
    fig.savefig(path)
    plt.close(fig)


def naive_set(raws: list[Path], master: Path, bpm: Path, ref_master: Path | None, ref_bpm: Path | None, out: Path,
              n_det: int, window: slice | None = None) -> list[dict]:
    """QC1-like statistics, flat1..flat5 at full resolution and a cover, the straightforward way."""
    out.mkdir(parents=True, exist_ok=True)
    rows, images = [], []
    for det in range(1, n_det + 1):
        row, image = naive_detector(raws, master, bpm, ref_master, ref_bpm, f"CHIP{det}.INT1", window)
        rows.append(row)
        images.append(image)
    ny, nx = images[0]["master"].shape
    centre = (slice(ny // 4, 3 * ny // 4), slice(nx // 4, 3 * nx // 4))
    image_figure(out / "flat1.png", [[i["master"] for i in images], [i["ratio"] for i in images]])
    image_figure(out / "flat2.png", [[i["master"][centre] for i in images], [i["ratio"][centre] for i in images]])
    image_figure(out / "flat3.png", [[i["bpm"] for i in images], [i["bpm_diff"] for i in images]])
    image_figure(out / "flat4.png", [[i["snr"] for i in images]])
    fig, axes = plt.subplots(3, n_det, figsize=(16, 10))
    for col, image in enumerate(images):
        axes[0, col].plot(np.median(image["mean"][ny // 2 - 50:ny // 2 + 50], axis=0))
        axes[1, col].plot(np.median(image["master"][ny // 2 - 50:ny // 2 + 50], axis=0))
        axes[1, col].plot(np.median(image["ref"][ny // 2 - 50:ny // 2 + 50], axis=0))
        axes[2, col].hist(image["master"].ravel(), bins=120, range=(0, 2), histtype="step", log=True)
        axes[2, col].hist(image["ref"].ravel(), bins=120, range=(0, 2), histtype="step", log=True)
    fig.savefig(out / "flat5.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(11.69, 8.27))
    ax.axis("off")
    ax.table(cellText=[[f"{v:.4g}" for v in row.values()] for row in rows], colLabels=list(rows[0]))
    fig.savefig(out / "cover.png", dpi=110)
    plt.close(fig)
    return rows


def run_plan(plan: list[dict]) -> None:
    """:func:`naive_set` of every set of a plan (``bench_process_night.py`` writes it): paths, ``window`` as
    ``[start, stop]`` reference rows or null, ``out`` and ``n_det`` per set."""
    for entry in plan:
        window = slice(*entry["window"]) if entry["window"] else None
        reference = [Path(p) if p else None for p in (entry["ref_master"], entry["ref_bpm"])]
        naive_set([Path(p) for p in entry["raws"]], Path(entry["master"]), Path(entry["bpm"]), *reference,
                  Path(entry["out"]), entry["n_det"], window)


if __name__ == "__main__":
    run_plan(json.loads(Path(sys.argv[1]).read_text()))
