"""The pictures show their limits and numbers: fixed S/N scale with the limit on the bar, max-flux line, visible bad
pixels, value/limit/margin on the cover; and the pure helpers behind them, on small arrays."""

from __future__ import annotations

import numpy as np
import pytest

from qc.analysis import bpm_change_view, central_cut, detector_view, local_median, raw_histogram
from qc.certify import certify
from qc.config import CRIRES_PLUS_CONFIG, QCConfig
from qc.cover import check_rows, draw_cover, margin, observed
from qc.display import block_or
from qc.plots import (
    BAD_PIXEL_RADIUS,
    Picture,
    bar_ticks,
    bpm_classes,
    class_image,
    flat3,
    flat4,
    flat5,
    flux_axis_top,
    snr_scale,
)
from qc.profiles import CRIRES, CRIRES_PLUS, profile_named
from qc.raster import BLACK, RED, dilate, fit_max, nice_ticks, outline, tick_label
from qc.records import CheckResult, DetectorQC, SetResult

CONFIG = QCConfig()


def make_result(snr_level: float = 400.0, raw_level: float = 5000.0, bad: tuple[int, int] | None = None,
                profile: str = "crires", shape: tuple[int, int] = (512, 1024)) -> SetResult:
    """A small analysed set whose views come from :func:`detector_view`: constant S/N and raws, one bad pixel
    (at ``bad`` on every detector) that is also new against the all-good reference BPM."""
    prof = profile_named(profile)
    config = prof.default_config
    rng = np.random.default_rng(1)
    views, detectors = [], []
    for det in prof.detectors:
        stack = np.full((3, *shape), raw_level, dtype=np.float32) + rng.normal(0, 5, (3, *shape)).astype(np.float32)
        master = np.ones(shape, dtype=np.float32)
        bpm = np.zeros(shape, dtype=np.int32)
        if bad is not None:
            bpm[bad] = 1
        snr = np.full(shape, snr_level)
        unvignetted = np.ones(shape, dtype=bool)
        views.append(detector_view(det, 1, stack, master, bpm, master, np.zeros_like(bpm), snr, unvignetted))
        count = int(bpm.astype(bool).sum())
        detectors.append(DetectorQC(
            detector=det, mean_level=raw_level, mean_flux=raw_level / 10, rms_master=0.01, badpix=count,
            median_snr=snr_level, max_flux=float(stack.max()), num_overexp=0, level_overexp=None, bpm_count=count,
            ref_ratio_median=1.0, ref_ratio_std=0.0, bpm_new=count, bpm_fixed=0, vignetted_pixels=0,
            bpm_bits={f"bpm_{name}": count if bit == 1 else 0 for name, bit in (prof.bpm_bits or {}).items()},
        ))
    return SetResult(
        set_id="0123456789abcdef", night="2010-05-12", profile=prof.name, setting_key="1090.400_25.000_Halogen",
        raw_type="FLAT", n_raw=3, dit=10.0, ndit=1, window_ny=shape[0], window_starty=1, mjd_obs=55329.43160,
        reference="ref.fits", reference_note="reference ref.fits", detectors=detectors,
        certification=certify(detectors, 3, "1090.400_25.000_Halogen", config), views=views,
        input_files=("master.fits", "bpm.fits", "raw1.fits", "raw2.fits", "raw3.fits"),
    )


def pixels(picture: Picture) -> np.ndarray:
    return np.asarray(picture.canvas.image)


def crop(picture: Picture, panel: str, inset: int = 1) -> np.ndarray:
    """The inside of a named panel (frame excluded)."""
    left, top, right, bottom = picture.panels[panel].box
    return pixels(picture)[top + inset:bottom - inset + 1, left + inset:right - inset + 1]


def count_colour(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(image == np.array(colour, dtype=np.uint8), axis=-1).sum())


# --- flat4: fixed S/N scale, limit on the bar, contour, numbers ---------------------------------------------------

def test_snr_scale_is_zero_to_twice_the_limit() -> None:
    assert snr_scale(250.0) == (0.0, 500.0)
    assert snr_scale(100.0) == (0.0, 200.0)


@pytest.mark.parametrize("level", [60.0, 112.0, 400.0, 5000.0])
def test_flat4_scale_is_fixed_whatever_the_data(level: float) -> None:
    scale = flat4(make_result(snr_level=level), CONFIG).scales["snr"]
    assert (scale.vmin, scale.vmax) == (0.0, 2 * CONFIG.snr_limit)
    assert CONFIG.snr_limit in scale.ticks
    assert dict(scale.marks)[CONFIG.snr_limit] == "limit"


def test_flat4_contour_encloses_cells_below_the_limit_only() -> None:
    low = crop(flat4(make_result(snr_level=112.0), CONFIG), "snr 1", inset=4)
    high = crop(flat4(make_result(snr_level=400.0), CONFIG), "snr 1", inset=4)
    # Below the limit everywhere: the contour runs round the whole detector (just inside the frame) ...
    assert count_colour(crop(flat4(make_result(snr_level=112.0), CONFIG), "snr 1", inset=1), BLACK) > 500
    # ... and the inside is in the lower half of the colour map; above the limit nothing is outlined.
    assert count_colour(high, BLACK) == 0
    assert low[..., 0].mean() > low[..., 2].mean()  # RdBu: red below the limit
    assert high[..., 2].mean() > high[..., 0].mean()  # blue above it


def test_flat4_is_a_message_without_snr() -> None:
    result = make_result()
    for view in result.views:
        view.snr = None
    picture = flat4(result, CONFIG)
    assert picture.scales == {} and picture.panels == {}


# --- flat5: max-flux limit on raw cut and histogram, reference cut, ratio -----------------------------------------

def test_flat5_draws_the_max_flux_limit_on_raw_cut_and_histogram() -> None:
    picture = flat5(make_result(raw_level=3000.0), CONFIG)
    limit = CONFIG.max_flux_limit
    for det in CRIRES.detectors:
        raw = picture.panels[f"raw_cut {det}"]
        assert [value for value, _ in raw.hlines] == [limit]
        assert raw.ylim[1] > limit  # in view although the data are far below it
        assert [value for value, _ in picture.panels[f"raw_hist {det}"].vlines] == [limit]
    raw = picture.panels["raw_cut 1"]
    _, (y,) = raw.px(0.0, np.array([limit]))
    row = pixels(picture)[round(y), raw.box[0] + 1:raw.box[2]]
    assert count_colour(row[:, None, :], RED) > 0.4 * row.shape[0]  # dashed red line across the panel


def test_flat5_axis_reaches_past_an_overexposed_cut() -> None:
    picture = flat5(make_result(raw_level=14000.0), CONFIG)
    assert picture.panels["raw_cut 1"].ylim[1] >= 14000.0
    assert picture.panels["raw_hist 1"].xlim[1] >= 14000.0


def test_flux_axis_top_shows_limit_and_data() -> None:
    assert flux_axis_top(10000.0, np.array([100.0, 200.0])) == pytest.approx(10800.0)
    assert flux_axis_top(10000.0, np.array([np.nan, 14000.0])) == pytest.approx(15120.0)


# --- flat3: bad pixels visible, discrete classes -----------------------------------------------------------------

def test_flat3_single_bad_pixel_covers_more_than_one_displayed_pixel() -> None:
    picture = flat3(make_result(bad=(300, 700)))
    side = 2 * BAD_PIXEL_RADIUS + 1
    assert count_colour(crop(picture, "bpm 1"), BLACK) >= side * side
    assert count_colour(crop(picture, "changes 1"), RED) >= side * side
    assert count_colour(crop(flat3(make_result()), "bpm 1"), BLACK) == 0


def test_class_image_grows_only_growing_classes() -> None:
    codes = np.zeros((50, 50), dtype=np.int32)
    codes[10, 10] = 1  # dark
    codes[30, 30] = 8  # out of order
    rgb = class_image(codes, bpm_classes(CRIRES_PLUS), 50, 50, radius=2)
    assert count_colour(rgb, RED) == 25
    assert count_colour(rgb, (228, 228, 228)) == 1
    assert count_colour(class_image(codes, bpm_classes(CRIRES_PLUS), 50, 50, radius=0), RED) == 1


def test_crires_plus_classes_are_per_bit_with_out_of_order_as_background() -> None:
    classes = bpm_classes(CRIRES_PLUS)
    assert {c.bits for c in classes} == set(CRIRES_PLUS.bpm_bits.values())
    out_of_order = next(c for c in classes if c.label == "outoforder")
    assert classes[0] is out_of_order and not out_of_order.grow
    assert [c.bits for c in bpm_classes(CRIRES)] == [-1]  # any non-zero value is bad


# --- cover: value, limit, margin ---------------------------------------------------------------------------------

def test_margin_is_room_to_the_limit() -> None:
    flux = CheckResult("max_flux", 1, 9418.0, 10000.0, True, "")
    assert margin(flux) == pytest.approx((582.0, 0.0582))
    snr = CheckResult("median_snr", 1, 112.0, 250.0, False, "")
    assert margin(snr) == pytest.approx((-138.0, -0.552))
    assert margin(CheckResult("median_snr", 1, None, 250.0, None, "")) is None


def test_cover_table_lists_value_limit_and_margin() -> None:
    result = make_result(snr_level=112.0)
    rows = check_rows(result)
    assert len(rows) == len(result.certification.checks) == 8
    snr_row = next(r for r in rows if r[0] == "median_snr" and r[1] == "1")
    assert snr_row[2:] == ("112", "> 250", "-138 (-55.2%)", "FAIL")
    flux_row = next(r for r in rows if r[0] == "max_flux" and r[1] == "1")
    max_flux = result.detectors[0].max_flux
    assert flux_row[3] == "<= 10000 ADU" and flux_row[5] == "pass"
    room, unit, relative = flux_row[4].split()
    assert float(room) == pytest.approx(10000 - max_flux, abs=0.5) and unit == "ADU"
    assert relative == f"({(10000 - max_flux) / 10000:+.1%})"


def test_cover_flags_a_pass_close_to_the_limit() -> None:
    result = make_result(raw_level=9400.0)
    flux = next(r for r in check_rows(result) if r[0] == "max_flux")
    assert flux[5] == "pass (close)"
    canvas = draw_cover(result, {"flat5": flat5(result, CONFIG).canvas.image})
    assert canvas.image.size == (1286, 910)


def test_observed_is_a_utc_calendar_time() -> None:
    assert observed(55329.5).startswith("2010-05-13 12:00:00 UTC")
    assert observed(None) == "unknown"


# --- pure helpers ------------------------------------------------------------------------------------------------

def test_dilate_grows_a_pixel_to_a_square() -> None:
    mask = np.zeros((7, 7), dtype=bool)
    mask[3, 3] = True
    grown = dilate(mask, 1)
    assert grown.sum() == 9 and grown[2:5, 2:5].all()
    edge = np.zeros((5, 5), dtype=bool)
    edge[0, 0] = True
    assert dilate(edge, 2).sum() == 9  # clipped at the border


def test_fit_max_keeps_a_single_pixel_when_shrinking() -> None:
    codes = np.zeros((512, 1024), dtype=np.int32)
    codes[511, 3] = 4
    small = fit_max(codes, (170, 340))
    assert small.shape == (170, 340) and small.sum() == 4 and small[-1, 1] == 4
    assert fit_max(np.array([[0, 2]]), (2, 4)).tolist() == [[0, 0, 2, 2], [0, 0, 2, 2]]


def test_outline_marks_the_border_of_a_region() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    assert outline(mask).sum() == 8 and not outline(mask)[2, 2]


def test_ticks() -> None:
    assert nice_ticks(0, 500, 5) == [0, 100, 200, 300, 400, 500]
    assert nice_ticks(0.98, 1.02, 4) == pytest.approx([0.98, 0.99, 1.0, 1.01, 1.02])
    assert tick_label(250.0, [0, 250, 500]) == "250"
    assert tick_label(0.99, [0.98, 0.99, 1.0]) == "0.99"
    assert bar_ticks(0, 500, [250]) == [0, 100, 200, 250, 300, 400, 500]
    assert 230 in bar_ticks(0, 500, [230]) and 200 not in bar_ticks(0, 500, [230])


def test_block_or_keeps_every_bit() -> None:
    codes = np.array([[1, 0, 0, 0], [0, 8, 0, 16], [0, 0, 2, 0]], dtype=np.int32)
    assert block_or(codes, 2).tolist() == [[9, 16], [0, 2]]


def test_bpm_change_view_keeps_new_and_fixed_in_one_block() -> None:
    bad = np.array([[True, False], [False, False]])
    ref = np.array([[False, True], [False, False]])
    assert bpm_change_view(bad, ref, 2).tolist() == [[3]]
    assert bpm_change_view(bad, ref, 1).tolist() == [[1, 2], [0, 0]]


def test_local_median_counts_only_the_counted_pixels() -> None:
    image = np.arange(16, dtype=np.float64).reshape(4, 4)
    counted = np.ones((4, 4), dtype=bool)
    counted[:, 0] = False
    cells = local_median(image, counted, 2)
    assert cells.tolist() == [[3.0, 4.5], [11.0, 12.5]]  # left cells: only column 1 counts
    assert np.isnan(local_median(image, np.zeros((4, 4), dtype=bool), 2)).all()


def test_raw_histogram_covers_the_highest_good_pixel() -> None:
    stack = np.full((2, 4, 4), 100.0, dtype=np.float32)
    stack[1, 0, 0] = 12000.0
    stack[0, 3, 3] = 60000.0  # bad in the BPM: not counted
    good = np.ones((4, 4), dtype=bool)
    good[3, 3] = False
    counts, edges = raw_histogram(stack, good)
    assert counts.sum() == 2 * 15 and edges[0] == 0.0 and edges[-1] == 12000.0


def test_central_cut_is_the_nan_median_of_the_central_rows() -> None:
    image = np.full((10, 3), np.nan)
    image[4, 0], image[5, 0] = 1.0, 3.0
    image[4, 1] = 7.0
    assert central_cut(image)[:2].tolist() == [2.0, 7.0] and np.isnan(central_cut(image)[2])


def test_crires_plus_pictures_draw() -> None:
    result = make_result(profile="crires+", shape=(256, 256), bad=(100, 100))
    assert count_colour(crop(flat3(result), "bpm 1"), RED) >= (2 * BAD_PIXEL_RADIUS + 1) ** 2  # bit 1: dark
    assert flat4(result, CRIRES_PLUS_CONFIG).scales["snr"].vmax == 500.0
    assert [v for v, _ in flat5(result, CRIRES_PLUS_CONFIG).panels["raw_cut 1"].hlines] == [37000.0]
