"""A second, deliberately simple implementation of the contract's QC1 definitions (section 4), for tests only.

It shares no code with ``qc/``: plain astropy reads (no memory map tricks), float64 everywhere, boolean indexing,
explicit loops over frames, and hard-coded CRIRES geometry, so that a mistake in the production code shows up as a
difference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits


def _chip(path: Path, det: int) -> np.ndarray:
    with fits.open(path) as hdul:
        return np.array(hdul[f"CHIP{det}.INT1"].data, dtype=np.float64)


def simple_qc1(raws: list[Path], master: Path, bpm: Path, ref_master: Path | None, ref_bpm: Path | None,
               det: int, n_detectors: int = 4, vignetted_width: int = 256, overexp: float = 10000.0) -> dict:
    """QC1 values of detector ``det`` straight from the contract's words."""
    frames = [_chip(p, det) for p in raws]
    m = _chip(master, det)
    b = _chip(bpm, det)
    with fits.open(raws[0]) as hdul:
        header = hdul[0].header
        dit, ndit = float(header["ESO DET DIT"]), int(header["ESO DET NDIT"])
        ny = int(header.get("ESO DET WINDOW NY", 512))
        starty = int(header.get("ESO DET WINDOW STARTY", 1))
    out: dict = {}
    medians = [float(np.median(f[np.isfinite(f)])) for f in frames]
    out["mean_level"] = sum(medians) / len(medians)
    out["mean_flux"] = out["mean_level"] / (ndit * dit)
    finite_m = m[np.isfinite(m)]
    out["rms_master"] = float(np.sqrt(np.mean((finite_m - finite_m.mean()) ** 2)))
    normalised = finite_m / np.median(finite_m)
    out["badpix"] = int(np.sum((normalised < 0.1) | (normalised > 10.0)))
    if len(frames) >= 3:
        stack = np.array(frames)
        std = stack.std(axis=0, ddof=1)
        mean = stack.mean(axis=0)
        usable = np.isfinite(std) & (std != 0)
        unvignetted = np.ones(m.shape, dtype=bool)
        if det == 1:
            unvignetted[:, :vignetted_width] = False
        if det == n_detectors:
            unvignetted[:, m.shape[1] - vignetted_width:] = False
        pick = usable & unvignetted
        out["median_snr"] = float(np.median(mean[pick] / std[pick]))
    else:
        out["median_snr"] = None
    good = b == 0
    out["max_flux"] = max(float(f[good & np.isfinite(f)].max()) for f in frames)
    counts = []
    for f in frames:
        over = f[good & np.isfinite(f) & (f > overexp)]
        counts.append(over)
    sizes = [len(c) for c in counts]
    out["num_overexp"] = max(sizes)
    out["level_overexp"] = float(np.median(counts[sizes.index(max(sizes))])) if max(sizes) else None
    out["bpm_count"] = int(np.count_nonzero(b))
    if ref_master is not None:
        rows = slice(starty - 1, starty - 1 + ny)
        ratio = m / _chip(ref_master, det)[rows]
        ratio = ratio[np.isfinite(ratio)]
        out["ref_ratio_median"] = float(np.median(ratio))
        out["ref_ratio_std"] = float(np.std(ratio))
        rb = _chip(ref_bpm, det)[rows]
        out["bpm_new"] = int(np.sum((b != 0) & (rb == 0)))
        out["bpm_fixed"] = int(np.sum((b == 0) & (rb != 0)))
    else:
        out.update(ref_ratio_median=None, ref_ratio_std=None, bpm_new=None, bpm_fixed=None)
    return out


CRIRES_PLUS_BITS = {"bpm_dark": 1, "bpm_flat": 2, "bpm_detlin": 4, "bpm_outoforder": 8, "bpm_edge": 16}


def simple_qc1_plus(raws: list[Path], master: Path, bpm: Path, ref_master: Path | None, ref_bpm: Path | None,
                    det: int) -> dict:
    """CRIRES+ QC1 values of detector ``det`` from the words of contract section 8: pixels where the master is NaN
    are left out of every statistic, BPM counts are over all pixels, bottom 40 rows and a 4-px edge vignetted."""
    frames = [_chip(p, det) for p in raws]
    m = _chip(master, det)
    b = _chip(bpm, det).astype(np.int64)
    with fits.open(raws[0]) as hdul:
        dit = float(hdul[0].header["ESO DET SEQ1 DIT"])
        ndit = int(hdul[0].header["ESO DET NDIT"])
    in_order = np.isfinite(m)
    out: dict = {}
    medians = [float(np.median(f[in_order & np.isfinite(f)])) for f in frames]
    out["mean_level"] = sum(medians) / len(medians)
    out["mean_flux"] = out["mean_level"] / (ndit * dit)
    finite_m = m[in_order]
    out["rms_master"] = float(np.sqrt(np.mean((finite_m - finite_m.mean()) ** 2)))
    normalised = finite_m / np.median(finite_m)
    out["badpix"] = int(np.sum((normalised < 0.1) | (normalised > 10.0)))
    if len(frames) >= 3:
        stack = np.array(frames)
        std = stack.std(axis=0, ddof=1)
        mean = stack.mean(axis=0)
        unvignetted = np.zeros(m.shape, dtype=bool)
        unvignetted[40:2048 - 4, 4:2048 - 4] = True
        pick = np.isfinite(std) & (std != 0) & unvignetted & in_order
        out["median_snr"] = float(np.median(mean[pick] / std[pick]))
    else:
        out["median_snr"] = None
    good = (b == 0) & in_order
    out["max_flux"] = max(float(f[good & np.isfinite(f)].max()) for f in frames)
    over = [f[good & np.isfinite(f) & (f > 37000.0)] for f in frames]
    sizes = [len(o) for o in over]
    out["num_overexp"] = max(sizes)
    out["level_overexp"] = float(np.median(over[sizes.index(max(sizes))])) if max(sizes) else None
    out["bpm_count"] = int(np.count_nonzero(b))
    for name, bit in CRIRES_PLUS_BITS.items():
        out[name] = int(np.sum((b // bit) % 2 == 1))
    if ref_master is not None:
        ratio = m / _chip(ref_master, det)
        ratio = ratio[np.isfinite(ratio)]
        out["ref_ratio_median"] = float(np.median(ratio))
        out["ref_ratio_std"] = float(np.std(ratio))
        rb = _chip(ref_bpm, det)
        out["bpm_new"] = int(np.sum((b != 0) & (rb == 0)))
        out["bpm_fixed"] = int(np.sum((b == 0) & (rb != 0)))
    else:
        out.update(ref_ratio_median=None, ref_ratio_std=None, bpm_new=None, bpm_fixed=None)
    return out
