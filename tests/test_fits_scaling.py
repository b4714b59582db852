"""FITS scaling (physical = BZERO + BSCALE x stored) and BLANK for raws, master, BPM and references, checked
against values known by construction (closed form), never against the code."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qc.analysis import analyse_set
from qc.errors import BadData, BadHeader
from qc.fitsio import inspect_file, open_fits, read_chip
from qc.profiles import CRIRES
from qc.sets import group_sets
from tests.tiny_set import NY, STARTY, TinyFile, tiny_set, write_file, write_files

NX = CRIRES.nx
KEY = "1090.400_25.000_Halogen"
"""A setting key with a reference (contract 6)."""


def stored_raw(k: int) -> np.ndarray:
    """Raw k (k = 0, 1, 2) stored as int16 with BSCALE 0.5, BZERO 10000: physical 6000 + 10 k + (column % 2),
    BLANK (32767, which would read as 26383.5 ADU) at row 1, columns 2 and 3."""
    physical = 6000 + 10 * k + (np.arange(NX) % 2)[None, :] * np.ones((NY, 1))
    stored = np.round(2 * (physical - 10000)).astype(np.int16)
    stored[1, 2:4] = 32767
    return stored


MASTER_HIGH, MASTER_LOW = (0, 100), (2, 200)
"""Master pixels that are 1 + 512/1024 = 1.5 and 1 - 973/1024 = 0.0498046875 (a bad pixel: < 0.1)."""


def stored_master() -> np.ndarray:
    """int16 with BSCALE 2**-10, BZERO 1: physical 1 + stored/1024; BLANK -32768 (would read -31) at (3, 300)."""
    stored = np.zeros((NY, NX), dtype=np.int16)
    stored[MASTER_HIGH] = 512
    stored[MASTER_LOW] = -973
    stored[3, 300] = -32768
    return stored


BAD = ((0, 10), (0, 11), (3, 500))
REF_BAD = ((0, 10), (2, 600))
"""Bad pixels (window rows) of the BPM and of the reference BPM: new (0, 11), (3, 500); fixed (2, 600)."""


def stored_bpm(bad: tuple[tuple[int, int], ...], rows: int, offset: int = 0) -> np.ndarray:
    """int16 with BZERO 32768 (the unsigned convention): physical 1 at ``bad`` (rows shifted by ``offset``)."""
    stored = np.full((rows, NX), -32768, dtype=np.int16)
    for row, col in bad:
        stored[row + offset, col] = -32767
    return stored


def write_reference(folder: Path) -> None:
    """Full-frame reference: master int32 with BSCALE 2**-13 (stored 4096 = 0.5), BLANK at full row 200, column 5;
    BPM int16 with BZERO 32768 and bad pixels ``REF_BAD`` on the window rows."""
    master = np.full((CRIRES.full_ny, NX), 4096, dtype=np.int32)
    master[STARTY - 1, 5] = -(2**31)
    master_file = TinyFile(f"CRIRES_FLAT_{KEY}.fits", "master", {"INSTRUME": "CRIRES"},
                           [master] * 4, [{"BSCALE": 2.0**-13, "BZERO": 0.0, "BLANK": -(2**31)}] * 4)
    bpm_file = TinyFile(f"CRIRES_BPM_{KEY}.fits", "bpm", {"INSTRUME": "CRIRES"},
                        [stored_bpm(REF_BAD, CRIRES.full_ny, STARTY - 1)] * 4, [{"BZERO": 32768}] * 4)
    write_file(master_file, folder)
    write_file(bpm_file, folder)


def test_scaled_and_blank_inputs_give_the_closed_form_qc1(tmp_path: Path) -> None:
    raw_scaling = {"BSCALE": 0.5, "BZERO": 10000.0, "BLANK": 32767}
    files = tiny_set([[stored_raw(k)] * 4 for k in range(3)], [stored_master()] * 4,
                     [stored_bpm(BAD, NY)] * 4, cwlen=1090.4)
    for tiny in files:
        tiny.chip_cards = [{"raw": raw_scaling, "master": {"BSCALE": 2.0**-10, "BZERO": 1.0, "BLANK": -32768},
                            "bpm": {"BZERO": 32768}}[tiny.kind]] * 4
    folder = write_files(files, tmp_path)
    write_reference(tmp_path / "reference")
    (flatset,) = group_sets([inspect_file(p) for p in sorted(folder.iterdir())]).complete
    assert flatset.setting_key == KEY
    result = analyse_set(flatset, CRIRES, CRIRES.default_config, tmp_path / "reference", with_views=False)
    assert result.reference == f"CRIRES_FLAT_{KEY}.fits"

    high, low = 0.5, -973 / 1024  # master deviations from 1
    n = NY * NX - 1  # one BLANK master pixel
    rms = math.sqrt((high**2 + low**2) / n - ((high + low) / n) ** 2)
    n_ratio = n - 1  # the reference's BLANK pixel is left out of master / reference
    ratio_std = 2 * math.sqrt((high**2 + low**2) / n_ratio - ((high + low) / n_ratio) ** 2)
    for qc in result.detectors:
        assert qc.mean_level == pytest.approx(6010.5, abs=1e-9)  # mean of medians 6000.5, 6010.5, 6020.5
        assert qc.mean_flux == pytest.approx(601.05, abs=1e-9)  # DIT 10 s, NDIT 1
        assert qc.max_flux == 6021.0  # not 26383.5: BLANK pixels are undefined
        assert qc.median_snr == pytest.approx(601.05, rel=1e-6)  # mean 6010 + m, std 10 across the raws
        assert qc.num_overexp == 0 and qc.level_overexp is None
        assert qc.rms_master == pytest.approx(rms, rel=1e-6)
        assert qc.badpix == 1  # 0.0498; the BLANK master pixel (else -31) is not counted
        assert qc.bpm_count == 3  # not 4096: BZERO 32768 makes stored -32768 a good 0
        assert (qc.bpm_new, qc.bpm_fixed) == (2, 1)
        assert qc.ref_ratio_median == pytest.approx(2.0, abs=1e-7)  # master 1 over reference 0.5
        assert qc.ref_ratio_std == pytest.approx(ratio_std, rel=1e-6)
    assert result.certification.verdict == "passed"


def read_one(path: Path, dtype: type) -> np.ndarray:
    with open_fits(path) as hdul:
        return read_chip(hdul, CRIRES, 1, dtype, NY)


def one_chip_file(tmp_path: Path, stored: np.ndarray, cards: dict) -> Path:
    zeros = np.zeros((NY, NX), dtype=stored.dtype)
    return write_file(TinyFile("one.fits", "raw", {"INSTRUME": "CRIRES"}, [stored, zeros, zeros, zeros],
                               [cards, {}, {}, {}]), tmp_path)


@pytest.mark.filterwarnings("ignore:Invalid 'BLANK' keyword")
def test_float_data_is_scaled_and_its_blank_ignored(tmp_path: Path) -> None:
    stored = np.full((NY, NX), 3.0, dtype=np.float32)
    stored[0, 0] = 7.0
    path = one_chip_file(tmp_path, stored, {"BSCALE": 2.0, "BZERO": -1.0, "BLANK": 7})
    physical = read_one(path, np.float32)
    assert physical.dtype == np.float32 and physical[0, 0] == 13.0  # 2 x 7 - 1: BLANK is for integer data only
    assert np.all(physical.ravel()[1:] == 5.0)


def test_int32_raw_scaled_in_float64_before_float32(tmp_path: Path) -> None:
    stored = np.full((NY, NX), 2**30, dtype=np.int32)
    path = one_chip_file(tmp_path, stored, {"BSCALE": 2.0**-20, "BZERO": -1024.0})
    assert np.all(read_one(path, np.float32) == 0.0)  # 2**30 / 2**20 - 1024, exact


def test_bpm_blank_pixels_and_fractional_values_are_bad_data(tmp_path: Path) -> None:
    stored = np.zeros((NY, NX), dtype=np.int16)
    stored[2, 7] = -1
    with pytest.raises(BadData, match=r"one.fits detector 1: 1 pixel\(s\) undefined \(BLANK = -1\)"):
        read_one(one_chip_file(tmp_path, stored, {"BLANK": -1}), np.int32)
    stored[2, 7] = 1
    with pytest.raises(BadData, match=r"one.fits detector 1: .*whole numbers.*e\.g\. 0\.5 at row 2, column 7"):
        read_one(one_chip_file(tmp_path, stored, {"BSCALE": 0.5}), np.int32)
    as_float = np.zeros((NY, NX), dtype=np.float32)
    as_float[1, 1] = np.nan
    with pytest.raises(BadData, match=r"e\.g\. nan at row 1, column 1"):
        read_one(one_chip_file(tmp_path, as_float, {}), np.int32)
    assert read_one(one_chip_file(tmp_path, stored, {"BZERO": 5}), np.int32)[2, 7] == 6


@pytest.mark.filterwarnings("ignore:Invalid value for 'BLANK'")
@pytest.mark.parametrize(("cards", "message"), [
    ({"BSCALE": "half"}, "one.fits: BSCALE = 'half' is not a number"),
    ({"BSCALE": 0}, "one.fits: BSCALE = 0 maps every pixel to BZERO"),
    ({"BZERO": True}, "one.fits: BZERO = True is not a number"),
    ({"BLANK": 1.5}, "one.fits: BLANK = 1.5 is not a whole number"),
])
def test_bad_scaling_keywords_are_named(tmp_path: Path, cards: dict, message: str) -> None:
    path = one_chip_file(tmp_path, np.zeros((NY, NX), dtype=np.int16), cards)
    with pytest.raises(BadHeader) as caught:
        read_one(path, np.float32)
    assert str(caught.value) == message


def test_unsigned_storage_written_by_astropy_reads_back(tmp_path: Path) -> None:
    """astropy stores uint16 as int16 with BZERO 32768; reading must give the unsigned values back."""
    values = np.full((NY, NX), 65535, dtype=np.uint16)
    values[0, 0] = 0
    path = tmp_path / "u.fits"
    fits.HDUList([fits.PrimaryHDU(), *(fits.ImageHDU(values, name=CRIRES.chip_extname(d)) for d in range(1, 5))]
                 ).writeto(path)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        assert hdul[1].data.dtype.kind == "i" and hdul[1].header["BZERO"] == 32768
    physical = read_one(path, np.float32)
    assert physical[0, 0] == 0.0 and physical[0, 1] == 65535.0
