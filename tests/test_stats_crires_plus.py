"""CRIRES+ QC1 conventions (contract 8) on small hand-made arrays: NaN (out-of-order) master pixels, bit masks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits

from qc.config import CRIRES_PLUS_CONFIG
from qc.display import block_reduce
from qc.geometry import unvignetted_mask
from qc.profiles import CRIRES, CRIRES_PLUS, detect_profile
from qc.stats import detector_qc

NAN = np.nan


def small_set() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 raws, master and BPM of 2 x 4 pixels; column 3 is between orders (master NaN, BPM bit 8)."""
    master = np.array([[1.0, 1.0, 3.0, NAN],
                       [1.0, 1.0, 1.0, NAN]])
    base = np.array([[100.0, 200.0, 300.0, 50000.0],
                     [400.0, 500.0, 600.0, 70000.0]], dtype=np.float32)
    stack = np.stack([base - 10, base, base + 10]).astype(np.float32)
    bpm = np.array([[0, 2, 0, 8],
                    [1 | 4, 0, 0, 8 | 16]], dtype=np.int32)
    return stack, master, bpm


def test_out_of_order_pixels_are_left_out_of_raw_statistics() -> None:
    stack, master, bpm = small_set()
    unvignetted = np.ones(master.shape, dtype=bool)
    qc = detector_qc(stack, master, bpm, None, None, dit=2.0, ndit=1, unvignetted=unvignetted,
                     config=replace(CRIRES_PLUS_CONFIG, overexp_level=250.0), detector=1,
                     bpm_bits=dict(CRIRES_PLUS.bpm_bits or {}))
    # in-order pixels of the middle raw: 100 200 300 400 500 600 -> median 350; the others 340, 360
    assert qc.mean_level == pytest.approx(350.0)
    assert qc.mean_flux == pytest.approx(175.0)
    # good (B == 0) in-order pixels: 100, 300, 500, 600 (+10 in the last raw); column 3 (50000, 70000) excluded
    assert qc.max_flux == pytest.approx(610.0)
    # > 250: 300, 500, 600 in every raw; first raw on the tie: 290, 490, 590 -> median 490
    assert (qc.num_overexp, qc.level_overexp) == (3, pytest.approx(490.0))
    # S/N = value / 10 over the 6 in-order pixels: median of 10..60 = 35
    assert qc.median_snr == pytest.approx(35.0)
    # master: finite values 1 1 3 1 1 1 -> mean 4/3, population std sqrt(5)/3; normalised 3 is inside [0.1, 10]
    assert qc.rms_master == pytest.approx(np.sqrt(5.0) / 3.0)
    assert qc.badpix == 0


def test_bpm_counts_are_over_all_pixels_one_column_per_bit() -> None:
    stack, master, bpm = small_set()
    qc = detector_qc(stack, master, bpm, None, None, 2.0, 1, np.ones(master.shape, dtype=bool),
                     CRIRES_PLUS_CONFIG, 2, bpm_bits=dict(CRIRES_PLUS.bpm_bits or {}))
    assert qc.bpm_count == 4  # out-of-order pixels count too
    expected = {"bpm_dark": 1, "bpm_flat": 1, "bpm_detlin": 1, "bpm_outoforder": 2, "bpm_edge": 1}
    assert dict(qc.bpm_bits) == expected
    assert qc.qc1().items() >= expected.items()  # QC1 columns of criresp_flat


def test_bpm_changes_against_a_reference_are_over_all_pixels() -> None:
    stack, master, bpm = small_set()
    ref_bpm = np.array([[0, 0, 2, 8], [0, 0, 0, 8]], dtype=np.int32)
    ref_master = np.array([[1.0, 2.0, 3.0, 1.0], [1.0, 1.0, 0.5, NAN]])
    qc = detector_qc(stack, master, bpm, ref_master, ref_bpm, 2.0, 1, np.ones(master.shape, dtype=bool),
                     CRIRES_PLUS_CONFIG, 1)
    assert (qc.bpm_new, qc.bpm_fixed) == (2, 1)  # new: (0,1), (1,0); fixed: (0,2); (1,3) bad in both
    # finite ratios: 1, 0.5, 1, 1, 1, 2 -> median 1, mean 13/12
    ratios = np.array([1.0, 0.5, 1.0, 1.0, 1.0, 2.0])
    assert qc.ref_ratio_median == pytest.approx(1.0)
    assert qc.ref_ratio_std == pytest.approx(ratios.std())


def test_crires_counts_every_finite_raw_pixel() -> None:
    """The in-order rule is a CRIRES+ convention: the CRIRES definitions use every finite raw pixel."""
    stack, master, bpm = small_set()
    qc = detector_qc(stack, master, np.zeros_like(bpm), None, None, 2.0, 1, np.ones(master.shape, dtype=bool),
                     replace(CRIRES_PLUS_CONFIG, in_order_only=False), 1)
    assert qc.mean_level == pytest.approx(450.0)  # all 8 pixels of the middle raw: median of 400 and 500
    assert qc.max_flux == pytest.approx(70010.0)


def test_snr_median_needs_in_order_and_unvignetted_pixels() -> None:
    stack, master, bpm = small_set()
    unvignetted = np.array([[False, True, True, True], [False, True, True, True]])
    qc = detector_qc(stack, master, bpm, None, None, 2.0, 1, unvignetted, CRIRES_PLUS_CONFIG, 1)
    assert qc.median_snr == pytest.approx(np.median([20.0, 30.0, 50.0, 60.0]))


def test_crires_plus_unvignetted_area_on_full_detector() -> None:
    mask = unvignetted_mask(CRIRES_PLUS, CRIRES_PLUS_CONFIG, 3, 2048)
    assert mask.shape == (2048, 2048)
    assert mask.sum() == (2048 - 40 - 4) * (2048 - 8)
    assert not mask[39].any() and mask[40, 4:2044].all() and not mask[:, :4].any() and not mask[2044:].any()


def test_profile_detected_from_headers() -> None:
    raw = fits.Header()
    raw["HIERARCH ESO DET SEQ1 DIT"] = 10.0
    raw["HIERARCH ESO INS WLEN ID"] = "K2166"
    raw["HIERARCH ESO INS WLEN CWLEN"] = 2166.0  # a CRIRES keyword must not make it CRIRES
    assert detect_profile(raw) is CRIRES_PLUS
    old = fits.Header()
    old["HIERARCH ESO DET DIT"] = 10.0
    assert detect_profile(old) is CRIRES
    for catg in ("CAL_FLAT_MASTER", "CAL_FLAT_BPM"):
        product = fits.Header()
        product["HIERARCH ESO PRO CATG"] = catg
        assert detect_profile(product) is CRIRES_PLUS


def test_display_blocks_ignore_gaps_and_keep_every_bad_pixel() -> None:
    image = np.array([[1.0, 3.0, NAN, NAN],
                      [NAN, 5.0, NAN, NAN]])
    assert block_reduce(image, 2)[0, 0] == pytest.approx(3.0)  # mean of the finite 1, 3, 5
    assert np.isnan(block_reduce(image, 2)[0, 1])  # all NaN: nothing to show
    bad = np.zeros((4, 4))
    bad[3, 2] = 1
    assert block_reduce(bad, 2, "max").tolist() == [[0, 0], [0, 1]]


def test_synthetic_orders_and_master_gaps() -> None:
    from qc.synth_crires_plus import EDGE, ORDERS_PER_DETECTOR, illumination

    light, in_order = illumination(2)
    column = in_order[:, 1024].astype(int)
    starts = np.flatnonzero(np.diff(column) == 1)
    ends = np.flatnonzero(np.diff(column) == -1)
    assert len(starts) == len(ends) == ORDERS_PER_DETECTOR
    assert all(150 <= e - s <= 175 for s, e in zip(starts, ends, strict=True))
    assert not in_order[:EDGE].any() and not in_order[:, -EDGE:].any() and (light[:, :EDGE] == 0).all()
    # the traces curve: the first order's centre moves along the dispersion
    centre = [np.flatnonzero(in_order[:341, x]).mean() for x in (100, 1024, 1947)]
    assert max(centre) - min(centre) > 5
