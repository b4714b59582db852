"""Degenerate inputs become named reasons (file, detector, value): header values at classification, pixels before
any statistic, and the whole set through ``analyse_set`` (rejected as bad data, never passed, never a crash)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qc.analysis import analyse_set
from qc.errors import BadData, BadHeader, BadLayout, FlatQCError, MissingKeyword
from qc.fitsio import FrameInfo, classify, inspect_file
from qc.profiles import CRIRES, CRIRES_PLUS
from qc.sets import group_sets
from qc.synth_fits import primary_header
from qc.validation import check_bpm, check_raw, master_median
from tests.tiny_set import NY, healthy_set, raw_cards, write_files

RAW = "CRIRE.2010-05-12T10:00:00.000.fits"


def classify_raw(**changes: object) -> FrameInfo:
    """Classify a raw whose primary keywords are changed (None deletes one)."""
    cards = raw_cards(RAW, 0)
    for key, value in changes.items():
        key = key.replace("_", " ")
        if value is None:
            del cards[key]
        else:
            cards[key] = value
    return classify(Path(RAW), primary_header(cards))


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"ESO DET DIT": 0.0}, BadHeader, f"{RAW}: ESO DET DIT = 0 s must be > 0 s"),
    ({"ESO DET DIT": -2.5}, BadHeader, f"{RAW}: ESO DET DIT = -2.5 s must be > 0 s"),
    ({"ESO DET DIT": "ten"}, BadHeader, f"{RAW}: ESO DET DIT = 'ten' is not a number"),
    ({"ESO DET DIT": True}, BadHeader, f"{RAW}: ESO DET DIT = True is not a number"),
    ({"ESO DET DIT": None}, MissingKeyword, f"{RAW}: missing keyword 'ESO DET DIT'"),
    ({"ESO DET NDIT": 0}, BadHeader, f"{RAW}: ESO DET NDIT = 0 must be >= 1"),
    ({"ESO DET NDIT": 1.5}, BadHeader, f"{RAW}: ESO DET NDIT = 1.5 is not a whole number"),
    ({"ESO DET NDIT": "1"}, BadHeader, f"{RAW}: ESO DET NDIT = '1' is not a number"),
    ({"ESO DET WINDOW NY": 0}, BadHeader, f"{RAW}: ESO DET WINDOW NY = 0 must be >= 1 and <= 512"),
    ({"ESO DET WINDOW NY": 600}, BadHeader, f"{RAW}: ESO DET WINDOW NY = 600 must be >= 1 and <= 512"),
    ({"ESO DET WINDOW STARTY": 510}, BadHeader, f"{RAW}: ESO DET WINDOW STARTY = 510 must be >= 1 and <= 509"),
    ({"ESO INS WLEN CWLEN": "K band"}, BadHeader, f"{RAW}: ESO INS WLEN CWLEN = 'K band' is not a number"),
    ({"ESO INS LAMP1 NAME": 3}, BadHeader, f"{RAW}: ESO INS LAMP1 NAME = 3 is not a non-empty string"),
    ({"ESO INS LAMP1 NAME": "  "}, BadHeader, f"{RAW}: ESO INS LAMP1 NAME = '' is not a non-empty string"),
    ({"ESO INS BAFFLE POS": None}, MissingKeyword, f"{RAW}: missing keyword 'ESO INS BAFFLE POS'"),
    ({"ARCFILE": 12}, BadHeader, f"{RAW}: ARCFILE = 12 is not a non-empty string"),
    ({"MJD-OBS": "yesterday"}, BadHeader, f"{RAW}: MJD-OBS = 'yesterday' is not a number"),
    ({"MJD-OBS": 1e9}, BadHeader, f"{RAW}: MJD-OBS = 1e+09 d is not a date of the years 1 to 9999"),
])
def test_header_values_of_the_wrong_type_or_range_are_named(changes: dict, error: type, message: str) -> None:
    with pytest.raises(error) as caught:
        classify_raw(**changes)
    assert str(caught.value) == message


def test_whole_reals_are_whole_numbers_and_ints_are_reals() -> None:
    """NDIT = 2.0 (a real holding a whole number) is the count 2; DIT = 10 and CWLEN = 2340 (ints) are the reals
    10.0 s and 2340.0 nm: the same setting as a file that wrote 2340.0."""
    info = classify_raw(**{"ESO DET NDIT": 2.0, "ESO DET DIT": 10, "ESO INS WLEN CWLEN": 2340})
    assert (info.ndit, type(info.ndit)) == (2, int)
    assert (info.dit, type(info.dit)) == (10.0, float)
    assert dict(info.setting_values)["ESO INS WLEN CWLEN"] == "2340.0"
    assert info.setting_key == classify_raw(**{"ESO INS WLEN CWLEN": 2340.0}).setting_key


def test_raw_checks_name_file_detector_and_value() -> None:
    image = np.full((2, 3), np.nan, dtype=np.float32)
    with pytest.raises(BadData, match=r"^r.fits detector 2: all 6 pixels are NaN \(no finite pixel\)$"):
        check_raw(image, "r.fits", 2)
    image[0, 1] = 0.0
    with pytest.raises(BadData, match=r"^r.fits detector 2: raw is all zero$"):
        check_raw(image, "r.fits", 2)
    image[:] = 17.5
    with pytest.raises(BadData, match=r"^r.fits detector 2: raw is constant: every finite pixel is 17.5 ADU$"):
        check_raw(image, "r.fits", 2)
    image[1, 2] = -np.inf
    with pytest.raises(BadData, match=r"^r.fits detector 2: 1 infinite pixel\(s\), e.g. -inf at row 1, column 2$"):
        check_raw(image, "r.fits", 2)
    image[1, 2] = 18.0
    check_raw(image, "r.fits", 2)
    outside = np.array([[True, False, False], [False, False, False]])
    image[0, 0] = np.nan
    with pytest.raises(BadData, match="no finite pixel where the master is finite"):
        check_raw(image, "r.fits", 2, pixels=outside)


def test_master_must_have_a_positive_median_of_finite_pixels() -> None:
    with pytest.raises(BadData, match=r"^m.fits detector 3: master has no finite pixel \(all 4 NaN\): cannot"):
        master_median(np.full((2, 2), np.nan), "m.fits", 3)
    with pytest.raises(BadData, match=r"^m.fits detector 3: median of the finite master pixels is 0: cannot"):
        master_median(np.zeros((2, 2)), "m.fits", 3)
    with pytest.raises(BadData, match=r"median of the finite master pixels is -1"):
        master_median(np.array([[-1.0, -1.0, 2.0]]), "m.fits", 3)
    assert master_median(np.array([[np.nan, 0.5, 1.0, 4.0]]), "m.fits", 3) == 1.0


def test_bpm_values_the_profile_does_not_allow() -> None:
    bpm = np.zeros((2, 4), dtype=np.int32)
    bpm[1, 3] = 2
    check_bpm(bpm, "b.fits", 1, CRIRES)  # a plain BPM: 0 good, any non-zero value bad (contract 3)
    check_bpm(bpm, "b.fits", 1, CRIRES_PLUS)  # bit 2 (flat) is a CRIRES+ bit
    bpm[1, 2] = 32
    with pytest.raises(BadData, match=r"^b.fits detector 1: 1 BPM pixel\(s\) hold values the crires\+ profile "
                                      r"does not allow \(0 or sums of bits 1, 2, 4, 8, 16\), e.g. 32 at row 1, "
                                      r"column 2$"):
        check_bpm(bpm, "b.fits", 1, CRIRES_PLUS)
    bpm[1, 2] = 0
    bpm[0, 0] = -1
    with pytest.raises(BadData, match=r" 1 BPM pixel\(s\) .* \(0 or sums of bits 1, 2, 4, 8, 16\), e.g. -1 at row 0"):
        check_bpm(bpm, "b.fits", 1, CRIRES_PLUS)
    with pytest.raises(BadData, match=r"^b.fits detector 1: the BPM marks all 8 pixels bad$"):
        check_bpm(np.ones((2, 4), dtype=np.int32), "b.fits", 1, CRIRES)


def analyse_tiny(tmp_path: Path, change) -> None:  # noqa: ANN001 - a function editing the TinyFile list
    files = healthy_set(np.random.default_rng(3))
    change(files)
    folder = write_files(files, tmp_path)
    (flatset,) = group_sets([inspect_file(p) for p in sorted(folder.iterdir())]).complete
    analyse_set(flatset, CRIRES, CRIRES.default_config, None, with_views=False)


def fill(kind: str, detector: int, value: float):  # noqa: ANN201
    def change(files: list) -> None:
        tiny = next(f for f in files if f.kind == kind)
        tiny.chips[detector - 1] = np.full_like(tiny.chips[detector - 1], value)
    return change


@pytest.mark.parametrize(("change", "message"), [
    (fill("master", 2, 0.0), "crires_spec_flat_tiny.fits detector 2: median of the finite master pixels is 0"),
    (fill("master", 4, np.nan), "crires_spec_flat_tiny.fits detector 4: master has no finite pixel (all 4096 NaN)"),
    (fill("raw", 3, 0.0), "CRIRE.2010-05-12T10:00:00.000.fits detector 3: raw is all zero"),
    (fill("raw", 1, np.nan), "CRIRE.2010-05-12T10:00:00.000.fits detector 1: all 4096 pixels are NaN"),
    (fill("raw", 1, np.inf), "CRIRE.2010-05-12T10:00:00.000.fits detector 1: 4096 infinite pixel(s), e.g. inf at"),
    (fill("bpm", 2, 1), "crires_spec_flat_tiny_bpm.fits detector 2: the BPM marks all 4096 pixels bad"),
])
def test_degenerate_sets_are_rejected_with_file_detector_and_value(tmp_path: Path, change, message: str) -> None:  # noqa: ANN001
    with pytest.raises(BadData) as caught:
        analyse_tiny(tmp_path, change)
    assert message in str(caught.value)


def test_shapes_that_differ_are_named(tmp_path: Path) -> None:
    def shorter_master(files: list) -> None:
        master = next(f for f in files if f.kind == "master")
        master.chips[2] = master.chips[2][:NY - 1]

    with pytest.raises(BadLayout, match=r"^crires_spec_flat_tiny.fits detector 3: extension CHIP3.INT1 has shape "
                                        r"\(3, 1024\), expected \(4, 1024\)$"):
        analyse_tiny(tmp_path, shorter_master)


def test_an_overflowing_qc1_value_is_a_reason_not_a_row(tmp_path: Path) -> None:
    def tiny_dit(files: list) -> None:
        for tiny in files:
            tiny.cards["ESO DET DIT"] = 1e-320  # > 0, but mean_level / DIT overflows

    with pytest.raises(FlatQCError, match=r"detector 1: mean_flux = inf is not a finite number"):
        analyse_tiny(tmp_path, tiny_dit)
