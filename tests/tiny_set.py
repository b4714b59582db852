"""A tiny CRIRES set written by hand: a windowed read-out of a few rows, so a whole set is ~200 kB and fast.

Every file is a :class:`TinyFile` (primary keywords, and per detector the stored array and extension keywords such
as BSCALE/BZERO/BLANK) that a test may change before :func:`write_files` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from qc.profiles import CRIRES
from qc.synth_fits import primary_header, product_cards

NIGHT = "2010-05-12"
NY, STARTY = 4, 201
"""Window of the tiny sets: 4 rows from row 201 (so references are compared on rows 200..203)."""


@dataclass
class TinyFile:
    name: str
    kind: str
    """``raw``, ``master`` or ``bpm``."""
    cards: dict[str, Any]
    chips: list[np.ndarray | None]
    """Stored data per detector (numpy order, rows x 1024); None leaves the extension out."""
    chip_cards: list[dict[str, Any]] = field(default_factory=lambda: [{} for _ in CRIRES.detectors])


def raw_cards(name: str, index: int, cwlen: float = 2340.0, ny: int = NY, starty: int = STARTY) -> dict[str, Any]:
    """Primary keywords of raw ``index`` of a tiny set (DIT 10 s, NDIT 1, no reference key by default)."""
    return {
        "INSTRUME": "CRIRES", "ARCFILE": name, "DATE-OBS": f"{NIGHT}T10:0{index}:00.000",
        "MJD-OBS": 55328.42 + index / 1440, "ESO DET DIT": 10.0, "ESO DET NDIT": 1, "ESO DET WINDOW NY": ny,
        "ESO DET WINDOW STARTY": starty, "ESO INS WLEN CWLEN": cwlen, "ESO INS BAFFLE POS": 25.0,
        "ESO INS LAMP1 NAME": "Halogen", "ESO DPR CATG": "CALIB", "ESO DPR TYPE": "FLAT", "ESO DPR TECH": "SPECTRUM",
    }


def tiny_set(raws: list[list[np.ndarray]], master: list[np.ndarray], bpm: list[np.ndarray],
             cwlen: float = 2340.0, ny: int = NY, starty: int = STARTY) -> list[TinyFile]:
    """Raws (per raw, per detector), master and BPM (per detector) as stored, with headers of contract 3."""
    names = [f"CRIRE.{NIGHT}T10:0{i}:00.000.fits" for i in range(len(raws))]
    files = [TinyFile(name, "raw", raw_cards(name, i, cwlen, ny, starty), chips)
             for i, (name, chips) in enumerate(zip(names, raws, strict=True))]
    first = files[0].cards
    files.append(TinyFile("crires_spec_flat_tiny.fits", "master",
                          product_cards(first, CRIRES.master_catg, names), master))
    files.append(TinyFile("crires_spec_flat_tiny_bpm.fits", "bpm", product_cards(first, CRIRES.bpm_catg, names), bpm))
    return files


def healthy_set(rng: np.random.Generator, n_raw: int = 3, ny: int = NY) -> list[TinyFile]:
    """A plausible tiny set: raws ~6000 ADU with noise, master ~1 with 2 % spread, BPM with 2 bad pixels."""
    raws = [[(6000 + 20 * rng.standard_normal((ny, CRIRES.nx))).astype(np.float32) for _ in CRIRES.detectors]
            for _ in range(n_raw)]
    master = [(1 + 0.02 * rng.standard_normal((ny, CRIRES.nx))).astype(np.float32) for _ in CRIRES.detectors]
    bpm = []
    for _ in CRIRES.detectors:
        chip = np.zeros((ny, CRIRES.nx), dtype=np.int16)
        chip[0, 10:12] = 1
        bpm.append(chip)
    return tiny_set(raws, master, bpm, ny=ny)


def write_file(tiny: TinyFile, folder: Path) -> Path:
    """Write one file: primary header only, then ``CHIPn.INT1`` with the stored data exactly as given."""
    hdus = [fits.PrimaryHDU(header=primary_header(tiny.cards))]
    for det, data, cards in zip(CRIRES.detectors, tiny.chips, tiny.chip_cards, strict=True):
        if data is None:
            continue
        ext = fits.ImageHDU(data=data, name=CRIRES.chip_extname(det))
        ext.header["HIERARCH ESO DET CHIP NO"] = det
        for key, value in cards.items():
            ext.header[key] = value
        hdus.append(ext)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / tiny.name
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_files(files: list[TinyFile], root: Path) -> Path:
    """Write a set under ``root/dfs_product/FLT_WIN/<night>/`` and return that folder."""
    folder = root / "dfs_product" / "FLT_WIN" / NIGHT
    for tiny in files:
        write_file(tiny, folder)
    return folder
