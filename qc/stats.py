"""QC1 statistics of one detector, one function per definition of contract section 4.

Inputs are 2-D arrays of one detector (raws in ADU, master normalised, BPM 0 = good); "finite" means not NaN/inf;
medians are numpy's (:func:`qc.median.median`: exact, without sorting whole images); std is population std
(ddof = 0) except the S/N's ddof = 1. None stands for SQL NULL. Raws stay float32; sums, moments and ratios are
taken in float64. ``pixels`` (optional boolean mask) restricts a raw statistic to some pixels: CRIRES+ uses the
in-order pixels, where the master is finite (contract 8).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from qc.config import QCConfig
from qc.median import median
from qc.records import DetectorQC

SNR_BLOCK_PIXELS = 32_768
"""Pixels per block of the S/N map: its float64 buffers stay in the processor's cache."""
MAX_DRAWS = 1024
"""Good pixels drawn to set the floor of the max-flux candidates (about 1 in 1000 pixels is above it)."""
RATIO_SLACK = 1e-9
"""Relative margin of the thresholds that pick badpix candidates before the exact division (rounding is ~1e-16)."""


def _usable(raw: np.ndarray, pixels: np.ndarray | None) -> np.ndarray | None:
    """Boolean mask of the finite pixels of ``raw`` (within ``pixels`` when given); None when every pixel is."""
    finite = np.isfinite(raw)
    if pixels is not None:
        finite &= pixels
    elif finite.all():
        return None
    return finite


def _finite_std(values: np.ndarray, finite: np.ndarray | None) -> float:
    """Population std (float64) of ``values[finite]`` (all values when ``finite`` is None)."""
    chosen = values if finite is None else values[finite]
    return float(np.std(chosen, dtype=np.float64))


def mean_level(raws: Iterable[np.ndarray], pixels: np.ndarray | None = None) -> float:
    """Mean over raws of the median of each raw's finite pixels [ADU] (seed: "average of the median values")."""
    levels = [median(raw, _usable(raw, pixels)) for raw in raws]
    return float(np.mean([math.nan if level is None else level for level in levels]))


def mean_flux(level: float, dit: float, ndit: int) -> float:
    """``mean_level / (NDIT * DIT)`` [ADU/s] (seed)."""
    return level / (ndit * dit)


def rms_master(master: np.ndarray, finite: np.ndarray | None = None) -> float:
    """Population std of the finite master pixels (seed: "standard deviation of the master product").
    ``finite``: ``np.isfinite(master)`` if known."""
    finite = np.isfinite(master) if finite is None else finite
    return _finite_std(master, None if finite.all() else finite)


def master_level(master: np.ndarray, finite: np.ndarray | None = None) -> float | None:
    """Median of the finite master pixels (what normalises it); None when there is none."""
    finite = np.isfinite(master) if finite is None else finite
    return median(master, None if finite.all() else finite)


def badpix(master: np.ndarray, low: float, high: float, level: float | None = None) -> int:
    """Finite pixels of ``master / median(finite master)`` outside ``[low, high]`` (seed: [0.1, 10.0]).

    ``level``: that median if known. With a positive median only the pixels near or beyond the limits (thresholds
    with a relative slack) are divided, in float64, and compared exactly.
    """
    level = master_level(master) if level is None else level
    if level is None:
        return 0
    if level > 0:
        near = master < np.float64(low * level * (1 + RATIO_SLACK))
        near |= master > np.float64(high * level * (1 - RATIO_SLACK))
        candidates = master[near]
    else:
        candidates = master.reshape(-1)
    normalised = candidates / np.float64(level)
    return int(np.count_nonzero(np.isfinite(normalised) & ((normalised < low) | (normalised > high))))


def snr_map(stack: np.ndarray) -> np.ndarray:
    """Per-pixel ``mean / std(ddof=1)`` over axis 0 of an (N, ny, nx) stack; NaN where std is 0 or not finite.

    Float64, two passes (mean, then squared deviations), block of rows by block of rows so that the temporaries
    stay small and in cache, whatever N and the detector size are.
    """
    n, ny, nx = stack.shape
    snr = np.empty((ny, nx), dtype=np.float64)
    rows = max(1, SNR_BLOCK_PIXELS // nx)
    mean, deviation, squares = (np.empty((rows, nx), dtype=np.float64) for _ in range(3))
    for start in range(0, ny, rows):
        block = stack[:, start:start + rows]
        size = block.shape[1]
        m, d, s, out = mean[:size], deviation[:size], squares[:size], snr[start:start + size]
        np.add.reduce(block, axis=0, dtype=np.float64, out=m)
        m /= n
        s.fill(0.0)
        for frame in block:
            np.subtract(frame, m, out=d)
            np.multiply(d, d, out=d)
            s += d
        s /= n - 1
        np.sqrt(s, out=s)
        out.fill(np.nan)
        np.divide(m, s, out=out, where=np.isfinite(s) & (s != 0))
    return snr


def median_snr(snr: np.ndarray, unvignetted: np.ndarray) -> float | None:
    """Median S/N over the unvignetted pixels where it is defined (bad pixels are not excluded); None if none."""
    return median(snr, unvignetted & np.isfinite(snr))


def _above(raw: np.ndarray, level: float) -> np.ndarray:
    """``raw > level`` compared in ``raw``'s own dtype when ``level`` is exact in it (float32: half the bytes)."""
    bound = raw.dtype.type(level) if raw.dtype.kind == "f" else level
    return raw > (bound if bound == level else np.float64(level))


def _good_max(raw: np.ndarray, good: np.ndarray) -> float:
    """Max of the finite ``raw`` pixels where ``good`` (-inf if none). Only pixels at least as high as the highest
    of some good pixels drawn at random are looked at: the max is among them."""
    flat, ok = raw.reshape(-1), good.reshape(-1)
    picks = np.random.default_rng(0).integers(0, flat.size, MAX_DRAWS)
    drawn = flat[picks][ok[picks]]
    drawn = drawn[np.isfinite(drawn)]
    candidates = flat >= drawn.max() if drawn.size else np.isfinite(flat)
    candidates &= ok
    values = flat[candidates]
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else -np.inf


def max_flux(raws: Iterable[np.ndarray], bpm: np.ndarray, pixels: np.ndarray | None = None) -> float:
    """Max over raws of the max of finite pixels with ``B == 0`` [ADU] ([convention]: hot pixels excluded)."""
    good = bpm == 0
    if pixels is not None:
        good &= pixels
    return max((_good_max(raw, good) for raw in raws), default=-np.inf)


def overexposure(raws: Iterable[np.ndarray], bpm: np.ndarray, level: float,
                 pixels: np.ndarray | None = None) -> tuple[int, float | None]:
    """``(num_overexp, level_overexp)``: most finite good pixels > ``level`` in one raw, and their median
    in the first raw with that many; level is None when no pixel is overexposed ([convention])."""
    good = None
    best_count, best_values = 0, None
    for raw in raws:
        above = _above(raw, level)  # NaN is not above
        if not above.any():
            continue
        if good is None:
            good = bpm == 0 if pixels is None else (bpm == 0) & pixels
        above &= good
        above &= np.isfinite(raw)
        count = int(np.count_nonzero(above))
        if count > best_count:
            best_count, best_values = count, raw[above]
    return best_count, median(best_values) if best_values is not None else None


def bpm_count(bpm: np.ndarray) -> int:
    """Non-zero BPM pixels."""
    return int(np.count_nonzero(bpm))


def reference_ratio(master: np.ndarray, reference: np.ndarray) -> tuple[float | None, float | None]:
    """Median and population std of the finite pixels of ``master / reference`` (float64)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return ratio_stats(np.divide(master, reference, dtype=np.float64))


def ratio_stats(ratio: np.ndarray) -> tuple[float | None, float | None]:
    """Median and population std of the finite pixels of a ratio image; (None, None) when none is finite."""
    finite = np.isfinite(ratio)
    if finite.all():
        finite = None
    elif not finite.any():
        return None, None
    return median(ratio, finite), _finite_std(ratio, finite)


def bpm_changes(bpm: np.ndarray, reference_bpm: np.ndarray) -> tuple[int, int]:
    """``(bpm_new, bpm_fixed)``: bad now but good in the reference, and good now but bad in the reference
    (fixed = bad in the reference - bad in both = bad in the reference - (bad now - new))."""
    new = int(np.count_nonzero(np.greater(bpm != 0, reference_bpm != 0)))
    return new, int(np.count_nonzero(reference_bpm)) - int(np.count_nonzero(bpm)) + new


def bpm_bit_counts(bpm: np.ndarray, bits: dict[str, int] | None) -> dict[str, int]:
    """Pixels with each named bit set (``bpm_<name>``) for a bit-mask BPM; empty for a 0/1 BPM."""
    if not bits:
        return {}
    named = np.bitwise_or.reduce(list(bits.values()))
    low = bpm & named
    if named < 256:
        low = low.astype(np.uint8)  # a quarter of the bytes for the per-bit passes
    return {f"bpm_{name}": int(np.count_nonzero(low & value)) for name, value in bits.items()}


def detector_qc(raws: np.ndarray, master: np.ndarray, bpm: np.ndarray, ref_master: np.ndarray | None,
                ref_bpm: np.ndarray | None, dit: float, ndit: int, unvignetted: np.ndarray, config: QCConfig,
                detector: int, snr: np.ndarray | None = None, bpm_bits: dict[str, int] | None = None,
                master_finite: np.ndarray | None = None, master_median: float | None = None) -> DetectorQC:
    """All QC1 parameters of one detector. ``raws`` is an (N, ny, nx) stack; ``snr`` may be passed if computed,
    and so may ``np.isfinite(master)`` and the median of the finite master pixels (validation has both).

    With ``config.in_order_only`` (CRIRES+) the raw statistics and the S/N use only the pixels where the master
    is finite; BPM counts are over all pixels either way (contract 8).
    """
    finite = np.isfinite(master) if master_finite is None else master_finite
    in_order = finite if config.in_order_only else None
    level = mean_level(raws, in_order)
    if snr is None and raws.shape[0] >= config.min_flats_for_snr:
        snr = snr_map(raws)
    snr_pixels = unvignetted if in_order is None else unvignetted & in_order
    num_over, level_over = overexposure(raws, bpm, config.overexp_level, in_order)
    ratio_median, ratio_std = reference_ratio(master, ref_master) if ref_master is not None else (None, None)
    new, fixed = bpm_changes(bpm, ref_bpm) if ref_bpm is not None else (None, None)
    normaliser = master_level(master, finite) if master_median is None else master_median
    return DetectorQC(
        detector=detector,
        mean_level=level,
        mean_flux=mean_flux(level, dit, ndit),
        rms_master=rms_master(master, finite),
        badpix=badpix(master, config.badpix_low, config.badpix_high, normaliser),
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
