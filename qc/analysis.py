"""Analyse one complete set: read each input once, detector by detector, into QC1 records and display views."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qc.certify import certify, trend_warnings
from qc.config import QCConfig
from qc.display import DISPLAY_PIXELS, block_or, block_reduce, display_block
from qc.fitsio import open_fits, read_chip
from qc.geometry import reference_rows, unvignetted_mask
from qc.last_good import LastGoodSet, PreviousMaster
from qc.profiles import InstrumentProfile
from qc.records import DetectorView, SetResult
from qc.reference import Reference, find_reference
from qc.sets import FlatSet
from qc.stats import detector_qc, ratio_stats, snr_map
from qc.validation import check_inputs, check_qc1

if TYPE_CHECKING:
    from astropy.io import fits

HIST_BINS = 120
SNR_CELL = 64
"""Side of the cells [px] over which the S/N picture's limit contour takes the median S/N."""


def central_cut(image: np.ndarray) -> np.ndarray:
    """Column profile: median over the central fifth of the rows, ignoring NaN (NaN where all are NaN)."""
    ny = image.shape[0]
    rows = np.sort(image[2 * ny // 5:max(3 * ny // 5, 2 * ny // 5 + 1)], axis=0)  # NaN sort last
    count = np.isfinite(rows).sum(axis=0)
    low = np.take_along_axis(rows, np.maximum(count - 1, 0)[None, :] // 2, axis=0)[0]
    high = np.take_along_axis(rows, (count // 2)[None, :], axis=0)[0]
    return np.where(count > 0, (low + high) / 2, np.nan).astype(np.float32)


def raw_histogram(stack: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram [ADU] of the finite pixels of every raw where ``good``, from min(0, lowest) to the highest value."""
    lows, highs = [], []
    for frame in stack:
        values = frame[good]
        lows.append(np.fmin.reduce(values, initial=np.inf))
        highs.append(np.fmax.reduce(values, initial=-np.inf))
    low, high = min(0.0, float(min(lows))), float(max(highs))
    if not np.isfinite(high) or high <= low:
        high = low + 1.0
    counts = np.zeros(HIST_BINS, dtype=np.int64)
    for frame in stack:
        counts += np.histogram(frame[good], bins=HIST_BINS, range=(low, high))[0]
    return counts, np.linspace(low, high, HIST_BINS + 1)


def local_median(image: np.ndarray, counted: np.ndarray, cell: int) -> np.ndarray:
    """Median of the ``counted`` finite pixels per ``cell`` x ``cell`` cell (a remainder forms smaller cells);
    NaN where fewer than a quarter of a full cell count.

    All cells at once: each sorted (NaN last), the middle one or the mean of the middle two of its non-NaN values
    taken as ``np.nanmedian`` takes them (which would loop over the cells in Python).
    """
    ny, nx = image.shape
    data = np.where(counted, image, np.nan)
    data = np.pad(data, ((0, -ny % cell), (0, -nx % cell)), constant_values=np.nan)
    blocks = data.reshape(data.shape[0] // cell, cell, data.shape[1] // cell, cell).swapaxes(1, 2)
    cells = np.sort(blocks.reshape(blocks.shape[0], blocks.shape[1], cell * cell), axis=2)
    enough = np.isfinite(cells).sum(axis=2) >= cell * cell // 4
    n = (~np.isnan(cells)).sum(axis=2)
    low = np.take_along_axis(cells, (np.maximum(n - 1, 0) // 2)[..., None], axis=2)[..., 0]
    high = np.take_along_axis(cells, (n // 2)[..., None], axis=2)[..., 0]
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, as np.nanmedian's mean would give
        middle = np.where(n % 2 == 1, low, (low + high) / 2)
    return np.where(enough, middle, np.nan).astype(np.float32)


def bpm_change_view(bad: np.ndarray, ref_bad: np.ndarray, block: int) -> np.ndarray:
    """Per display block the OR of 1 (a pixel newly bad) and 2 (a pixel fixed): no change disappears."""
    return block_or((bad & ~ref_bad).astype(np.int32) | ((~bad & ref_bad).astype(np.int32) << 1), block)


def detector_view(detector: int, starty: int, stack: np.ndarray, master: np.ndarray, bpm: np.ndarray,
                  ref_master: np.ndarray | None, ref_bpm: np.ndarray | None, snr: np.ndarray | None,
                  unvignetted: np.ndarray, prev_ratio: np.ndarray | None = None,
                  max_pixels: int = DISPLAY_PIXELS) -> DetectorView:
    """Block-averaged images, cuts and histograms of one detector for the plots (``prev_ratio``: master / master
    of the last good set on the window's rows, :func:`qc.last_good.window_ratio`)."""
    block = display_block(master.shape, max_pixels)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = master / ref_master if ref_master is not None else None
    in_master = np.isfinite(master)
    snr_shown = np.where(in_master, snr, np.nan) if snr is not None else None
    return DetectorView(
        detector=detector,
        block=block,
        starty=starty,
        master=block_reduce(master, block),
        ratio=block_reduce(ratio, block) if ratio is not None else None,
        bpm=block_or(bpm, block),
        bpm_changes=bpm_change_view(bpm != 0, ref_bpm != 0, block) if ref_bpm is not None else None,
        snr=block_reduce(snr_shown, block) if snr_shown is not None else None,
        snr_local=local_median(snr_shown, unvignetted, SNR_CELL) if snr_shown is not None else None,
        snr_cell=SNR_CELL,
        unvignetted=block_reduce((~unvignetted).astype(np.float32), block, "max") == 0,
        raw_cut=central_cut(stack.mean(axis=0, dtype=np.float64)),
        master_cut=central_cut(master),
        ref_cut=central_cut(ref_master) if ref_master is not None else None,
        ratio_cut=central_cut(ratio) if ratio is not None else None,
        raw_hist=raw_histogram(stack, bpm == 0),
        prev_ratio=block_reduce(prev_ratio, block) if prev_ratio is not None else None,
    )


def analyse_set(flatset: FlatSet, profile: InstrumentProfile, config: QCConfig, reference_dir: Path | None,
                with_views: bool = True, last_good: LastGoodSet | None = None) -> SetResult:
    """QC1 per detector, certification, the comparison with ``last_good`` (the last good set of the setting, None
    when there is none) and (optionally) display views of one complete set.

    Every input is read in physical units and validated (:mod:`qc.validation`) before any statistic: a degenerate
    input raises a :class:`qc.errors.FlatQCError` naming the file, the detector and the value.
    """
    first = flatset.raws[0]
    ny, starty, n_raw = first.window_ny, first.window_starty, flatset.n_raw
    rows = reference_rows(starty, ny)
    reference = find_reference(reference_dir, profile, config, flatset.setting_key)
    reference_names = (reference.master.name, reference.bpm.name) \
        if reference.master is not None and reference.bpm is not None else None
    raw_names = [raw.path.name for raw in flatset.raws]
    detectors, views = [], []
    previous = PreviousMaster(last_good, profile)
    ratios: dict[int, tuple[float | None, float | None]] = {}
    with ExitStack() as files:
        inputs = open_inputs(files, flatset, reference)
        previous.open(files)
        for det in profile.detectors:
            stack, master, bpm, ref_master, ref_bpm = read_detector(inputs, profile, det, ny, rows)
            checked = check_inputs(det, profile, raw_names, stack, flatset.master.path.name, master,
                                   flatset.bpm.path.name, bpm, config.in_order_only, reference_names, ref_master,
                                   ref_bpm)
            unvignetted = unvignetted_mask(profile, config, det, ny, starty)
            snr = snr_map(stack) if n_raw >= config.min_flats_for_snr else None
            detectors.append(detector_qc(
                stack, master, bpm, ref_master, ref_bpm, first.dit or 0.0, first.ndit or 1, unvignetted,
                config, det, snr=snr, bpm_bits=dict(profile.bpm_bits) if profile.bpm_bits else None,
                master_finite=checked.finite, master_median=checked.median,
            ))
            check_qc1(detectors[-1], f"set {flatset.set_id}")
            prev_ratio = previous.ratio(det, master, starty)
            if prev_ratio is not None:
                ratios[det] = ratio_stats(prev_ratio)
            if with_views:
                views.append(detector_view(det, starty, stack, master, bpm, ref_master, ref_bpm, snr, unvignetted,
                                           prev_ratio))
            del stack, master, bpm, snr, ref_master, ref_bpm, checked, prev_ratio
    if previous.problem is not None:  # the previous master failed on a later detector: no ratio anywhere
        for view in views:
            view.prev_ratio = None
    return SetResult(
        set_id=flatset.set_id, night=flatset.night, profile=profile.name, setting_key=flatset.setting_key,
        raw_type=profile.raw_type(ny), n_raw=n_raw, dit=first.dit or 0.0, ndit=first.ndit or 1,
        window_ny=ny, window_starty=starty, mjd_obs=first.mjd_obs,
        reference=reference.master.name if reference.available and reference.master else None,
        reference_note=reference.note,
        detectors=detectors,
        certification=certify(detectors, n_raw, flatset.setting_key, config),
        warnings=trend_warnings(config, flatset.setting_key, detectors),
        views=views,
        last_good=previous.result(detectors, ratios, flatset.setting_key, starty, ny),
    )


@dataclass(frozen=True)
class SetFiles:
    """The FITS files of one set, each opened once (headers parsed once): raws, master, BPM and the reference
    master and BPM (None without reference)."""

    raws: list[fits.HDUList]
    master: fits.HDUList
    bpm: fits.HDUList
    ref_master: fits.HDUList | None
    ref_bpm: fits.HDUList | None


def open_inputs(files: ExitStack, flatset: FlatSet, reference: Reference) -> SetFiles:
    """Open every input of the set for reading (closed by ``files``)."""
    def opened(path: Path) -> fits.HDUList:
        return files.enter_context(open_fits(path))

    raws = [opened(raw.path) for raw in flatset.raws]
    master, bpm = opened(flatset.master.path), opened(flatset.bpm.path)
    ref_master = ref_bpm = None
    if reference.available and reference.master is not None and reference.bpm is not None:
        ref_master, ref_bpm = opened(reference.master), opened(reference.bpm)
    return SetFiles(raws, master, bpm, ref_master, ref_bpm)


def read_detector(inputs: SetFiles, profile: InstrumentProfile, det: int, ny: int,
                  rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Chip ``det`` of every input in physical units, each read once: (N, ny, nx) float32 raw stack [ADU], master
    (profile dtype), int32 BPM, and the reference master and BPM rows ``rows`` (None without reference).

    :func:`qc.fitsio.read_chip` releases each chip's memory map once converted, so no more than one detector's
    pixels stay resident.
    """
    master_dtype = np.dtype(profile.master_dtype).type
    stack = np.empty((len(inputs.raws), ny, profile.nx), dtype=np.float32)
    for index, raw in enumerate(inputs.raws):
        read_chip(raw, profile, det, np.float32, ny, out=stack[index])
    master = read_chip(inputs.master, profile, det, master_dtype, ny)
    bpm = read_chip(inputs.bpm, profile, det, np.int32, ny)
    ref_master = ref_bpm = None
    if inputs.ref_master is not None and inputs.ref_bpm is not None:
        ref_master = read_chip(inputs.ref_master, profile, det, master_dtype, profile.full_ny)[rows]
        ref_bpm = read_chip(inputs.ref_bpm, profile, det, np.int32, profile.full_ny)[rows]
    return stack, master, bpm, ref_master, ref_bpm
