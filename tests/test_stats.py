"""Each QC1 definition (contract 4) on small hand-made arrays with answers known in closed form."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from qc.config import QCConfig
from qc.geometry import reference_rows, unvignetted_mask
from qc.profiles import CRIRES, CRIRES_PLUS
from qc.stats import (
    badpix,
    bpm_bit_counts,
    bpm_changes,
    bpm_count,
    detector_qc,
    max_flux,
    mean_flux,
    mean_level,
    median_snr,
    overexposure,
    reference_ratio,
    rms_master,
    snr_map,
)


def test_mean_level_is_mean_of_medians_of_finite_pixels() -> None:
    a = np.array([[1.0, 2.0, 3.0, np.nan]])  # finite median 2
    b = np.array([[10.0, 20.0, np.inf, 40.0]])  # finite median 20
    assert mean_level([a, b]) == pytest.approx(11.0)
    assert mean_flux(11.0, dit=2.0, ndit=5) == pytest.approx(1.1)


def test_rms_master_is_population_std_of_finite_pixels() -> None:
    master = np.array([[1.0, 3.0, np.nan, -np.inf]])
    assert rms_master(master) == pytest.approx(1.0)  # values 1, 3: mean 2, ddof=0 std 1


def test_badpix_counts_normalised_values_outside_limits() -> None:
    # median of finite values is 2.0; normalised: 0.1 (edge, good), 0.05 (bad), 10 (edge, good), 10.5 (bad)
    master = np.array([2.0] * 7 + [0.2, 0.1, 20.0, 21.0, np.nan, np.inf])
    assert np.median(master[np.isfinite(master)]) == 2.0
    assert badpix(master, 0.1, 10.0) == 2


def test_snr_map_of_a_three_frame_stack() -> None:
    stack = np.array([[[9.0, 5.0]], [[10.0, 5.0]], [[11.0, 5.0]]], dtype=np.float32)
    snr = snr_map(stack)
    assert snr[0, 0] == pytest.approx(10.0 / 1.0)  # mean 10, std(ddof=1) 1
    assert math.isnan(snr[0, 1])  # std 0: excluded


def test_median_snr_only_over_unvignetted_defined_pixels() -> None:
    snr = np.array([[100.0, 200.0, 300.0, np.nan, 1000.0]])
    unvignetted = np.array([[True, True, True, True, False]])
    assert median_snr(snr, unvignetted) == pytest.approx(200.0)
    assert median_snr(snr, np.zeros_like(unvignetted)) is None


def test_max_flux_excludes_bad_pixels_and_non_finite() -> None:
    raw1 = np.array([[100.0, 50000.0, np.inf]])
    raw2 = np.array([[300.0, 60000.0, 200.0]])
    bpm = np.array([[0, 1, 0]])
    assert max_flux([raw1, raw2], bpm) == 300.0


def test_overexposure_counts_good_pixels_and_takes_first_frame_on_tie() -> None:
    bpm = np.array([[0, 0, 0, 1]])
    raw1 = np.array([[10001.0, 10003.0, 5.0, 99999.0]])  # 2 good > 10000: median 10002
    raw2 = np.array([[20000.0, 30000.0, 6.0, 99999.0]])  # also 2: tie -> the first frame
    raw3 = np.array([[1.0, 10000.0, 2.0, 99999.0]])  # exactly 10000 is not above
    assert overexposure([raw1, raw2, raw3], bpm, 10000.0) == (2, pytest.approx(10002.0))
    assert overexposure([raw3], bpm, 10000.0) == (0, None)


def test_bpm_counts_and_changes_against_reference() -> None:
    bpm = np.array([[0, 1, 2, 0]])
    ref = np.array([[1, 1, 0, 0]])
    assert bpm_count(bpm) == 2
    assert bpm_changes(bpm, ref) == (1, 1)  # new: index 2; fixed: index 0


def test_bpm_bit_counts() -> None:
    bpm = np.array([[1, 3, 8, 24, 0]], dtype=np.int32)
    assert bpm_bit_counts(bpm, {"dark": 1, "flat": 2, "outoforder": 8, "edge": 16}) == {
        "bpm_dark": 2, "bpm_flat": 1, "bpm_outoforder": 2, "bpm_edge": 1}
    assert bpm_bit_counts(bpm, None) == {}


def test_reference_ratio_median_and_std() -> None:
    master = np.array([[1.0, 2.0, 3.0, 1.0]])
    ref = np.array([[1.0, 1.0, 1.0, 0.0]])  # last pixel: inf, excluded
    median, std = reference_ratio(master, ref)
    assert median == pytest.approx(2.0)
    assert std == pytest.approx(np.sqrt(2.0 / 3.0))


def test_windowed_frame_against_full_frame_reference_rows() -> None:
    full_ref = np.arange(1, 9, dtype=np.float64)[:, None] * np.ones((8, 4))  # row r holds r+1
    rows = reference_rows(starty=3, ny=2)  # 1-based rows 3..4 -> numpy 2..3
    assert (rows.start, rows.stop) == (2, 4)
    window = np.array([[6.0] * 4, [8.0] * 4])  # twice the reference rows (3, 4)
    median, std = reference_ratio(window, full_ref[rows])
    assert median == pytest.approx(2.0) and std == pytest.approx(0.0)


def test_unvignetted_mask_crires_first_and_last_detector() -> None:
    config = QCConfig(vignetted_width=256)
    m1 = unvignetted_mask(CRIRES, config, 1, 512)
    m2 = unvignetted_mask(CRIRES, config, 2, 512)
    m4 = unvignetted_mask(CRIRES, config, 4, 100, starty=50)
    assert m1.shape == (512, 1024) and m4.shape == (100, 1024)
    assert not m1[:, :256].any() and m1[:, 256:].all()
    assert m2.all()
    assert m4[:, :768].all() and not m4[:, 768:].any()


def test_unvignetted_mask_crires_plus_bottom_rows_and_edge() -> None:
    tiny = replace(CRIRES_PLUS, full_ny=60, nx=20)
    config = QCConfig(vignetted_width=0, vignetted_bottom_rows=40, edge_width=4)
    mask = unvignetted_mask(tiny, config, 2, 60)
    expected = np.zeros((60, 20), dtype=bool)
    expected[40:56, 4:16] = True
    assert (mask == expected).all()


def test_detector_qc_combines_definitions() -> None:
    stack = np.stack([np.full((2, 3), v, dtype=np.float32) for v in (90.0, 100.0, 110.0)])
    stack[:, 0, 0] = [20000.0, 20000.0, 20000.0]  # hot pixel, flagged
    master = np.ones((2, 3))
    bpm = np.zeros((2, 3), dtype=np.int32)
    bpm[0, 0] = 1
    unvignetted = np.ones((2, 3), dtype=bool)
    qc = detector_qc(stack, master, bpm, None, None, dit=10.0, ndit=2, unvignetted=unvignetted,
                     config=QCConfig(), detector=3)
    assert qc.detector == 3
    assert qc.mean_level == pytest.approx(100.0)
    assert qc.mean_flux == pytest.approx(5.0)
    assert qc.max_flux == 110.0
    assert qc.median_snr == pytest.approx(10.0)  # the hot pixel has std 0 and is excluded
    assert qc.bpm_count == 1 and qc.badpix == 0 and qc.rms_master == 0.0
    assert qc.ref_ratio_median is None and qc.bpm_new is None
    two = detector_qc(stack[:2], master, bpm, None, None, 10.0, 2, unvignetted, QCConfig(), 3)
    assert two.median_snr is None


def test_level_overexp_of_huge_float32_values_does_not_overflow() -> None:
    huge = float(np.float32(3e38))  # the median of two such pixels is their mean, > float32 max if taken in float32
    raw = np.array([[huge, huge, 5.0]], dtype=np.float32)
    assert overexposure([raw], np.zeros((1, 3), dtype=np.int32), 10000.0) == (2, huge)
