"""Analyse one complete set: read each input once, detector by detector, into QC1 records and display views."""

from __future__ import annotations

import warnings
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from qc.certify import certify
from qc.config import QCConfig
from qc.display import DISPLAY_PIXELS, block_reduce, display_block
from qc.fitsio import open_fits, read_chip
from qc.geometry import reference_rows, unvignetted_mask
from qc.profiles import InstrumentProfile
from qc.records import DetectorView, SetResult
from qc.reference import Reference, find_reference
from qc.sets import FlatSet
from qc.stats import detector_qc, snr_map
from qc.validation import check_inputs, check_qc1

HIST_BINS = 120
MASTER_RANGE = (0.0, 2.0)
"""Histogram range of normalised masters."""
RATIO_RANGE = (0.8, 1.2)
"""Histogram range of master / reference."""


def central_cut(image: np.ndarray) -> np.ndarray:
    """Column profile: median over the central fifth of the rows (NaN-aware; NaN where all are NaN)."""
    ny = image.shape[0]
    rows = slice(2 * ny // 5, max(3 * ny // 5, 2 * ny // 5 + 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (CRIRES+ edge) give NaN
        return np.nanmedian(image[rows], axis=0).astype(np.float32)


def histogram(values: np.ndarray, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    finite = values[np.isfinite(values)]
    return np.histogram(finite, bins=HIST_BINS, range=value_range)


def bpm_change_view(bad: np.ndarray, ref_bad: np.ndarray, block: int) -> np.ndarray:
    """Per display block: +1 if any pixel is newly bad, else -1 if any was fixed, else 0 (none disappears)."""
    new = block_reduce(bad & ~ref_bad, block, "max")
    fixed = block_reduce(~bad & ref_bad, block, "max")
    return np.where(new > 0, 1.0, -fixed).astype(np.float32)


def detector_view(detector: int, starty: int, stack: np.ndarray, master: np.ndarray, bpm: np.ndarray,
                  ref_master: np.ndarray | None, ref_bpm: np.ndarray | None, snr: np.ndarray | None,
                  unvignetted: np.ndarray, max_pixels: int = DISPLAY_PIXELS) -> DetectorView:
    """Block-averaged images, cuts and histograms of one detector for the plots."""
    block = display_block(master.shape, max_pixels)
    finite_master = master[np.isfinite(master)]
    normalised = master / np.median(finite_master) if finite_master.size else master
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = master / ref_master if ref_master is not None else None
    bad = (bpm != 0).astype(np.float32)
    return DetectorView(
        detector=detector,
        block=block,
        starty=starty,
        master=block_reduce(master, block),
        ratio=block_reduce(ratio, block) if ratio is not None else None,
        bpm=block_reduce(bad, block, "max"),
        bpm_diff=bpm_change_view(bpm != 0, ref_bpm != 0, block) if ref_bpm is not None else None,
        snr=block_reduce(snr, block) if snr is not None else None,
        unvignetted=block_reduce((~unvignetted).astype(np.float32), block, "max") == 0,
        raw_cut=central_cut(stack.mean(axis=0, dtype=np.float64)),
        master_cut=central_cut(master),
        ref_cut=central_cut(ref_master) if ref_master is not None else None,
        master_hist=histogram(normalised, MASTER_RANGE),
        ref_hist=histogram(ref_master, MASTER_RANGE) if ref_master is not None else None,
        ratio_hist=histogram(ratio, RATIO_RANGE) if ratio is not None else None,
    )


def analyse_set(flatset: FlatSet, profile: InstrumentProfile, config: QCConfig, reference_dir: Path | None,
                with_views: bool = True) -> SetResult:
    """QC1 per detector, certification and (optionally) display views of one complete set.

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
    for det in profile.detectors:
        stack, master, bpm, ref_master, ref_bpm = read_detector(flatset, reference, profile, det, ny, rows)
        check_inputs(det, profile, raw_names, stack, flatset.master.path.name, master, flatset.bpm.path.name, bpm,
                     config.in_order_only, reference_names, ref_master, ref_bpm)
        unvignetted = unvignetted_mask(profile, config, det, ny, starty)
        snr = snr_map(stack) if n_raw >= config.min_flats_for_snr else None
        detectors.append(detector_qc(
            stack, master, bpm, ref_master, ref_bpm, first.dit or 0.0, first.ndit or 1, unvignetted,
            config, det, snr=snr, bpm_bits=dict(profile.bpm_bits) if profile.bpm_bits else None,
        ))
        check_qc1(detectors[-1], f"set {flatset.set_id}")
        if with_views:
            views.append(detector_view(det, starty, stack, master, bpm, ref_master, ref_bpm, snr, unvignetted))
        del stack, master, bpm, snr, ref_master, ref_bpm
    return SetResult(
        set_id=flatset.set_id, night=flatset.night, profile=profile.name, setting_key=flatset.setting_key,
        raw_type=profile.raw_type(ny), n_raw=n_raw, dit=first.dit or 0.0, ndit=first.ndit or 1,
        window_ny=ny, window_starty=starty, mjd_obs=first.mjd_obs,
        reference=reference.master.name if reference.available and reference.master else None,
        reference_note=reference.note,
        detectors=detectors,
        certification=certify(detectors, n_raw, flatset.setting_key, config),
        views=views,
    )


def read_detector(flatset: FlatSet, reference: Reference, profile: InstrumentProfile, det: int, ny: int,
                  rows: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Chip ``det`` of every input in physical units: (N, ny, nx) float32 raw stack [ADU], master (profile dtype),
    int32 BPM, and the reference master and BPM rows ``rows`` (None without reference).

    The files are opened for this detector only and closed again, so no more than one detector's memory-mapped
    pages stay resident.
    """
    master_dtype = np.dtype(profile.master_dtype).type
    with ExitStack() as files:
        stack = np.empty((flatset.n_raw, ny, profile.nx), dtype=np.float32)
        for index, raw in enumerate(flatset.raws):
            read_chip(files.enter_context(open_fits(raw.path)), profile, det, np.float32, ny, out=stack[index])
        master = read_chip(files.enter_context(open_fits(flatset.master.path)), profile, det, master_dtype, ny)
        bpm = read_chip(files.enter_context(open_fits(flatset.bpm.path)), profile, det, np.int32, ny)
        ref_master = ref_bpm = None
        if reference.available and reference.master is not None and reference.bpm is not None:
            ref_file = files.enter_context(open_fits(reference.master))
            ref_master = read_chip(ref_file, profile, det, master_dtype, profile.full_ny)[rows]
            ref_bpm = read_chip(files.enter_context(open_fits(reference.bpm)), profile, det, np.int32,
                                profile.full_ny)[rows]
    return stack, master, bpm, ref_master, ref_bpm
