"""A naive flat-QC of one set, for benchmarks: astropy defaults (no memory map, each extension read by
``fits.getdata`` re-opening the file), float64 everywhere, pyplot at full resolution (every pixel drawn).

It is what a first notebook would do; ``bench_set.py`` times it against the production path in the same run.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402


def naive_set(raws: list[Path], master: Path, bpm: Path, out: Path, n_det: int) -> list[dict]:
    """QC1-like statistics and five full-resolution figures + a cover, the straightforward way."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    masters, snrs, bpms = [], [], []
    for det in range(1, n_det + 1):
        ext = f"CHIP{det}.INT1"
        frames = [fits.getdata(p, ext).astype(np.float64) for p in raws]
        m = fits.getdata(master, ext).astype(np.float64)
        b = fits.getdata(bpm, ext).astype(np.float64)
        stack = np.array(frames)
        snr = stack.mean(axis=0) / stack.std(axis=0, ddof=1) if len(frames) >= 3 else np.zeros_like(m)
        good = m[np.isfinite(m)]
        rows.append({
            "mean_level": np.mean([np.median(f[np.isfinite(f)]) for f in frames]),
            "rms_master": good.std(),
            "badpix": int(np.sum((good / np.median(good) < 0.1) | (good / np.median(good) > 10))),
            "median_snr": float(np.nanmedian(snr)),
            "max_flux": max(f[b == 0].max() for f in frames),
        })
        masters.append(m)
        snrs.append(snr)
        bpms.append(b)
    for index, images in enumerate((masters, masters, bpms, snrs, masters), start=1):
        ny, nx = images[0].shape
        fig, axes = plt.subplots(1, len(images), figsize=(nx * len(images) / 100, ny / 100), dpi=100)
        for ax, image in zip(np.atleast_1d(axes), images, strict=True):
            ax.imshow(image, origin="lower", interpolation="none")
        fig.savefig(out / f"flat{index}.png")
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(12, 8))
    ax.axis("off")
    ax.table(cellText=[[f"{v:.4g}" for v in row.values()] for row in rows], colLabels=list(rows[0]))
    fig.savefig(out / "cover.png", dpi=150)
    plt.close(fig)
    return rows
