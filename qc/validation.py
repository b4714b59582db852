"""Validation between reading and statistics: every degenerate input becomes a named :mod:`qc.errors` reason.

Header values are checked when a file is classified (:func:`qc.fitsio.classify`), pixels when a set is analysed
(:func:`qc.analysis.analyse_set`), per detector, before any statistic. Each message names the file, the detector
and the offending value, so that a rejected set or file says why in the ledger and on the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qc.errors import BadData, BadHeader, MissingKeyword
from qc.profiles import InstrumentProfile
from qc.records import DetectorQC
from qc.stats import master_level
from qc.times import MJD_RANGE


def require(header: Mapping[str, Any], key: str, where: str) -> Any:
    """The value of ``key``; :class:`MissingKeyword` naming the file ``where`` when absent."""
    if key not in header:
        raise MissingKeyword(f"{where}: missing keyword {key!r}")
    return header[key]


def real_value(header: Mapping[str, Any], key: str, where: str) -> float:
    """``key`` as a finite real number (FITS integer or real, never a string or logical); raises otherwise."""
    value = require(header, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadHeader(f"{where}: {key} = {value!r} is not a number")
    return float(value)


def mjd_value(header: Mapping[str, Any], key: str, where: str) -> float:
    """``key`` as an MJD [d] with a calendar date (:data:`qc.times.MJD_RANGE`); raises otherwise."""
    value = real_value(header, key, where)
    low, high = MJD_RANGE
    if not low <= value <= high:
        raise BadHeader(f"{where}: {key} = {value:g} d is not a date of the years 1 to 9999")
    return value


def whole_value(header: Mapping[str, Any], key: str, where: str) -> int:
    """``key`` as a whole number (a real with no fraction, e.g. ``2.0``, is accepted); raises otherwise."""
    value = real_value(header, key, where)
    if not value.is_integer():
        raise BadHeader(f"{where}: {key} = {header[key]!r} is not a whole number")
    return int(value)


def text_value(header: Mapping[str, Any], key: str, where: str) -> str:
    """``key`` as a non-empty string (stripped); raises for numbers, logicals and blanks."""
    value = require(header, key, where)
    if not isinstance(value, str) or not value.strip():
        raise BadHeader(f"{where}: {key} = {value!r} is not a non-empty string")
    return value.strip()


def in_range(value: float, key: str, where: str, low: float, high: float | None = None,
             low_inclusive: bool = True, unit: str = "") -> None:
    """Raise :class:`BadHeader` unless ``low <= value`` (``<`` if not ``low_inclusive``) and ``value <= high``."""
    above = value >= low if low_inclusive else value > low
    if not above or (high is not None and value > high):
        bound = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise BadHeader(f"{where}: {key} = {value:g}{unit} must be {bound}{unit}")


def _example(image: np.ndarray, mask: np.ndarray) -> str:
    """``<value> at row r, column c`` of the first pixel where ``mask`` is set (numpy, 0-based)."""
    row, col = np.unravel_index(int(np.argmax(mask)), mask.shape)
    value = image[row, col].item()
    shown = f"{value:g}" if isinstance(value, float) else f"{value}"
    return f"{shown} at row {row}, column {col}"


def check_no_inf(image: np.ndarray, where: str, detector: int, finite: np.ndarray | None = None) -> None:
    """Raise :class:`BadData` if any pixel is +inf or -inf (NaN is allowed: it marks an undefined pixel).
    ``finite``: ``np.isfinite(image)`` if known (all true: nothing else to look at)."""
    if finite is not None and finite.all():
        return
    infinite = np.isinf(image)
    count = int(np.count_nonzero(infinite))
    if count:
        raise BadData(f"{where} detector {detector}: {count} infinite pixel(s), e.g. {_example(image, infinite)}")


def check_raw(raw: np.ndarray, where: str, detector: int, pixels: np.ndarray | None = None) -> None:
    """A raw detector [ADU] must have no inf, some finite pixel (within ``pixels``: CRIRES+ in-order pixels)
    and not be constant (all zero included): otherwise its median, S/N and flux mean nothing.

    Two NaN-skipping reductions (``fmin``, ``fmax``) answer all but the in-order question: an inf is the lowest or
    the highest value, and both are NaN only when every pixel is.
    """
    low, high = float(np.fmin.reduce(raw, axis=None)), float(np.fmax.reduce(raw, axis=None))
    if math.isinf(low) or math.isinf(high):
        check_no_inf(raw, where, detector)
    if math.isnan(low):
        raise BadData(f"{where} detector {detector}: all {raw.size} pixels are NaN (no finite pixel)")
    if pixels is not None and not np.count_nonzero(pixels & np.isfinite(raw)):
        raise BadData(f"{where} detector {detector}: no finite pixel where the master is finite")
    if low == high:
        what = "all zero" if low == 0 else f"constant: every finite pixel is {low:g} ADU"
        raise BadData(f"{where} detector {detector}: raw is {what}")


def master_median(master: np.ndarray, where: str, detector: int, finite: np.ndarray | None = None) -> float:
    """Median of the finite master pixels; :class:`BadData` when there is none, when it is <= 0 (a flat cannot be
    normalised by it) or when a pixel is inf. ``finite``: ``np.isfinite(master)`` if known."""
    finite = np.isfinite(master) if finite is None else finite
    check_no_inf(master, where, detector, finite)
    median = master_level(master, finite)
    if median is None:
        raise BadData(f"{where} detector {detector}: master has no finite pixel (all {master.size} NaN): "
                      "cannot normalise")
    if not median > 0:
        raise BadData(f"{where} detector {detector}: median of the finite master pixels is {median:g}: "
                      "cannot normalise")
    return median


def check_bpm(bpm: np.ndarray, where: str, detector: int, profile: InstrumentProfile) -> None:
    """A BPM detector must leave at least one pixel good (0); a bit-mask BPM (CRIRES+) may only hold sums of its
    profile's named bits. A plain BPM (CRIRES) may hold any integer: 0 is good, non-zero bad (contract 3)."""
    if profile.bpm_bits:
        outside = bpm & ~profile.bpm_allowed_mask  # negative values have high bits set too
        count = int(np.count_nonzero(outside))
        if count:
            allowed = "0 or sums of bits " + ", ".join(str(v) for v in profile.bpm_bits.values())
            raise BadData(f"{where} detector {detector}: {count} BPM pixel(s) hold values the {profile.name} "
                          f"profile does not allow ({allowed}), e.g. {_example(bpm, outside != 0)}")
    if np.count_nonzero(bpm) == bpm.size:
        raise BadData(f"{where} detector {detector}: the BPM marks all {bpm.size} pixels bad")


@dataclass(frozen=True)
class CheckedMaster:
    """What validating a master found out and the statistics need again."""

    finite: np.ndarray
    """``np.isfinite(master)``: the in-order pixels of CRIRES+."""
    median: float
    """Median of the finite pixels (> 0), which normalises the master."""


def check_inputs(detector: int, profile: InstrumentProfile, raw_names: Sequence[str], stack: np.ndarray,
                 master_name: str, master: np.ndarray, bpm_name: str, bpm: np.ndarray,
                 in_order_only: bool = False, reference_names: tuple[str, str] | None = None,
                 ref_master: np.ndarray | None = None, ref_bpm: np.ndarray | None = None) -> CheckedMaster:
    """Every input of one detector, before any statistic: master, BPM, each raw of the (N, ny, nx) ``stack``
    (within the master's finite pixels with ``in_order_only``), and the reference master (no inf) and BPM.
    Returns the master's finite mask and median for the statistics."""
    finite = np.isfinite(master)
    checked = CheckedMaster(finite, master_median(master, master_name, detector, finite))
    check_bpm(bpm, bpm_name, detector, profile)
    for name, raw in zip(raw_names, stack, strict=True):
        check_raw(raw, name, detector, finite if in_order_only else None)
    if reference_names is not None:
        if ref_master is not None:
            check_no_inf(ref_master, reference_names[0], detector)
        if ref_bpm is not None:
            check_bpm(ref_bpm, reference_names[1], detector, profile)
    return checked


def check_qc1(qc: DetectorQC, where: str) -> None:
    """Every QC1 value must be a finite number or None (NULL): an overflow (e.g. a tiny DIT) is a reason, not a row."""
    for name, value in qc.qc1().items():
        if value is not None and not math.isfinite(value):
            raise BadData(f"{where} detector {qc.detector}: {name} = {value} is not a finite number")
