"""QC1 statistics of one detector, one function per definition of contract section 4.

Inputs are 2-D arrays of one detector (raws in ADU, master normalised, BPM 0 = good); "finite" means not NaN/inf;
medians are numpy's; std is population std (ddof = 0) except the S/N's ddof = 1. None stands for SQL NULL.
Sums and moments of stacks are accumulated in float64. ``pixels`` (optional boolean mask) restricts a raw statistic
to some pixels: CRIRES+ uses the in-order pixels, where the master is finite (contract 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qc.config import QCConfig
from qc.records import DetectorQC


def _usable(raw: np.ndarray, pixels: np.ndarray | None) -> np.ndarray:
    """Boolean mask of the finite pixels of ``raw`` (within ``pixels`` when given)."""
    finite = np.isfinite(raw)
    return finite if pixels is None else finite & pixels


def mean_level(raws: Sequence[np.ndarray], pixels: np.ndarray | None = None) -> float:
    """Mean over raws of the median of each raw's finite pixels [ADU] (seed: "average of the median values")."""
    return float(np.mean([np.median(raw[_usable(raw, pixels)]) for raw in raws]))


def mean_flux(level: float, dit: float, ndit: int) -> float:
    """``mean_level / (NDIT * DIT)`` [ADU/s] (seed)."""
    return level / (ndit * dit)


def rms_master(master: np.ndarray) -> float:
    """Population std of the finite master pixels (seed: "standard deviation of the master product")."""
    return float(np.std(master[np.isfinite(master)], dtype=np.float64))


def badpix(master: np.ndarray, low: float, high: float) -> int:
    """Finite pixels of ``master / median(finite master)`` outside ``[low, high]`` (seed: [0.1, 10.0])."""
    finite = master[np.isfinite(master)]
    normalised = finite / np.median(finite)
    return int(np.count_nonzero((normalised < low) | (normalised > high)))


def snr_map(stack: np.ndarray) -> np.ndarray:
    """Per-pixel ``mean / std(ddof=1)`` over axis 0 of an (N, ny, nx) stack; NaN where std is 0 or not finite.

    Two passes in float64 with in-place operations: a few image-sized buffers, whatever N is.
    """
    n = stack.shape[0]
    mean = np.zeros(stack.shape[1:], dtype=np.float64)
    for frame in stack:
        mean += frame
    mean /= n
    squares = np.zeros_like(mean)
    deviation = np.empty_like(mean)
    for frame in stack:
        np.subtract(frame, mean, out=deviation)
        np.square(deviation, out=deviation)
        squares += deviation
    std = np.sqrt(squares / (n - 1), out=squares)
    usable = np.isfinite(std) & (std != 0)
    snr = np.full(mean.shape, np.nan)
    np.divide(mean, std, out=snr, where=usable)
    return snr


def median_snr(snr: np.ndarray, unvignetted: np.ndarray) -> float | None:
    """Median S/N over the unvignetted pixels where it is defined (bad pixels are not excluded); None if none."""
    values = snr[unvignetted & np.isfinite(snr)]
    return float(np.median(values)) if values.size else None


def max_flux(raws: Sequence[np.ndarray], bpm: np.ndarray, pixels: np.ndarray | None = None) -> float:
    """Max over raws of the max of finite pixels with ``B == 0`` [ADU] ([convention]: hot pixels excluded)."""
    good = bpm == 0
    best = -np.inf
    for raw in raws:
        values = raw[good & _usable(raw, pixels)]
        if values.size:
            best = max(best, float(values.max()))
    return best


def overexposure(raws: Sequence[np.ndarray], bpm: np.ndarray, level: float,
                 pixels: np.ndarray | None = None) -> tuple[int, float | None]:
    """``(num_overexp, level_overexp)``: most finite good pixels > ``level`` in one raw, and their median
    in the first raw with that many; level is None when no pixel is overexposed ([convention])."""
    good = bpm == 0
    best_count, best_values = 0, None
    for raw in raws:
        values = raw[good & _usable(raw, pixels) & (raw > level)]
        if values.size > best_count:
            best_count, best_values = values.size, values
    return best_count, float(np.median(best_values.astype(np.float64))) if best_values is not None else None


def bpm_count(bpm: np.ndarray) -> int:
    """Non-zero BPM pixels."""
    return int(np.count_nonzero(bpm))


def reference_ratio(master: np.ndarray, reference: np.ndarray) -> tuple[float | None, float | None]:
    """Median and population std of the finite pixels of ``master / reference``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = master / reference
    finite = ratio[np.isfinite(ratio)]
    if not finite.size:
        return None, None
    return float(np.median(finite)), float(np.std(finite, dtype=np.float64))


def bpm_changes(bpm: np.ndarray, reference_bpm: np.ndarray) -> tuple[int, int]:
    """``(bpm_new, bpm_fixed)``: bad now but good in the reference, and good now but bad in the reference."""
    bad, ref_bad = bpm != 0, reference_bpm != 0
    return int(np.count_nonzero(bad & ~ref_bad)), int(np.count_nonzero(~bad & ref_bad))


def bpm_bit_counts(bpm: np.ndarray, bits: dict[str, int] | None) -> dict[str, int]:
    """Pixels with each named bit set (``bpm_<name>``) for a bit-mask BPM; empty for a 0/1 BPM."""
    if not bits:
        return {}
    return {f"bpm_{name}": int(np.count_nonzero(bpm & value)) for name, value in bits.items()}


def detector_qc(raws: np.ndarray, master: np.ndarray, bpm: np.ndarray, ref_master: np.ndarray | None,
                ref_bpm: np.ndarray | None, dit: float, ndit: int, unvignetted: np.ndarray, config: QCConfig,
                detector: int, snr: np.ndarray | None = None,
                bpm_bits: dict[str, int] | None = None) -> DetectorQC:
    """All QC1 parameters of one detector. ``raws`` is an (N, ny, nx) stack; ``snr`` may be passed if computed.

    With ``config.in_order_only`` (CRIRES+) the raw statistics and the S/N use only the pixels where the master
    is finite; BPM counts are over all pixels either way (contract 8).
    """
    in_order = np.isfinite(master) if config.in_order_only else None
    level = mean_level(raws, in_order)
    if snr is None and raws.shape[0] >= config.min_flats_for_snr:
        snr = snr_map(raws)
    snr_pixels = unvignetted if in_order is None else unvignetted & in_order
    num_over, level_over = overexposure(raws, bpm, config.overexp_level, in_order)
    ratio_median, ratio_std = reference_ratio(master, ref_master) if ref_master is not None else (None, None)
    new, fixed = bpm_changes(bpm, ref_bpm) if ref_bpm is not None else (None, None)
    return DetectorQC(
        detector=detector,
        mean_level=level,
        mean_flux=mean_flux(level, dit, ndit),
        rms_master=rms_master(master),
        badpix=badpix(master, config.badpix_low, config.badpix_high),
        median_snr=median_snr(snr, snr_pixels) if snr is not None else None,
        max_flux=max_flux(raws, bpm, in_order),
        num_overexp=num_over,
        level_overexp=level_over,
        bpm_count=bpm_count(bpm),
        ref_ratio_median=ratio_median,
        ref_ratio_std=ratio_std,
        bpm_new=new,
        bpm_fixed=fixed,
        vignetted_pixels=int(np.count_nonzero(~unvignetted)),
        bpm_bits=bpm_bit_counts(bpm, bpm_bits),
    )
