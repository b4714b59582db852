"""The one module of ``qc`` that touches FITS files: structure check, classification, chip reading.

Headers are read lazily (astropy memory maps the data); chips are read by ``EXTNAME``, never by position,
and converted once to native-endian arrays.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from qc.errors import BadLayout, CorruptFile, IncompleteFile, MissingKeyword, NotAFlatProduct, NotFits
from qc.profiles import InstrumentProfile, detect_profile

FITS_BLOCK = 2880
"""FITS files are made of 2880-byte blocks (FITS standard 3.1)."""


@dataclass(frozen=True)
class FrameInfo:
    """What one file is, from its primary header alone (no pixel is read)."""

    path: Path
    kind: str
    """``master``, ``bpm`` or ``raw``."""
    profile: str
    """Instrument profile name."""
    arcfile: str | None
    """``ARCFILE`` of a raw (its identity in provenance lists); None for products."""
    raw_names: tuple[str, ...]
    """Products: the sorted ``PRO REC1 RAWi NAME`` values; raws: empty."""
    setting_key: str | None
    dit: float | None
    ndit: int | None
    window_ny: int
    window_starty: int
    mjd_obs: float | None
    date_obs: str | None
    lamp: str | None
    setting_values: tuple[tuple[str, str], ...]
    """``(keyword, value)`` of the setting keywords, for consistency checks and provenance."""


def check_structure(path: str | os.PathLike[str]) -> None:
    """Raise unless ``path`` is a complete FITS file: magic, whole 2880-byte blocks, every HDU's data present."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise NotFits("empty file (0 bytes)")
    with open(path, "rb") as fh:
        magic = fh.read(9)
    if magic != b"SIMPLE  =":
        raise NotFits("not a FITS file (does not start with SIMPLE)")
    if size % FITS_BLOCK:
        raise IncompleteFile(f"size {size} bytes is not a whole number of 2880-byte FITS blocks (truncated?)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
                for index in range(len(hdul)):
                    info = hdul.fileinfo(index)
                    end = info["datLoc"] + info["datSpan"]
                    if end > size:
                        raise IncompleteFile(
                            f"HDU {index} needs {end} bytes but the file has {size} (truncated?)"
                        )
    except (IncompleteFile, NotFits):
        raise
    except Exception as exc:  # astropy raises many types for broken files
        raise CorruptFile(f"unreadable FITS structure: {exc}") from exc


def read_primary_header(path: str | os.PathLike[str]) -> fits.Header:
    """The primary header; raises :class:`CorruptFile` when astropy cannot parse it."""
    try:
        return fits.getheader(path, 0)
    except Exception as exc:
        raise CorruptFile(f"cannot read the primary header: {exc}") from exc


def _require(header: fits.Header, key: str) -> Any:
    if key not in header:
        raise MissingKeyword(f"missing keyword {key!r}")
    return header[key]


def _raw_names(header: fits.Header) -> tuple[str, ...]:
    names = []
    i = 1
    while f"ESO PRO REC1 RAW{i} NAME" in header:
        names.append(str(header[f"ESO PRO REC1 RAW{i} NAME"]).strip())
        i += 1
    return tuple(sorted(names))


def classify(path: str | os.PathLike[str], header: fits.Header,
             default_window_starty: int = 1) -> FrameInfo:
    """Say what the file with this primary header is; raise a named :mod:`qc.errors` reason otherwise."""
    profile = detect_profile(header)
    catg = str(header.get("ESO PRO CATG", "")).strip()
    if profile is None:
        what = f"PRO CATG = {catg!r}" if catg else "no PRO CATG and no flat raw keywords"
        raise NotAFlatProduct(f"not a flat product or raw of a known instrument ({what})")
    if catg == profile.master_catg:
        kind = "master"
    elif catg == profile.bpm_catg:
        kind = "bpm"
    else:
        dpr = tuple(str(header.get(f"ESO DPR {k}", "")).strip() for k in ("CATG", "TYPE", "TECH"))
        if dpr != profile.raw_dpr:
            raise NotAFlatProduct(
                f"not a raw flat: DPR CATG/TYPE/TECH = {'/'.join(dpr)} (want {'/'.join(profile.raw_dpr)})"
            )
        kind = "raw"
    raw_names = _raw_names(header) if kind != "raw" else ()
    if kind != "raw" and not raw_names:
        raise MissingKeyword("product lists no raw inputs (missing 'ESO PRO REC1 RAW1 NAME')")
    arcfile = str(_require(header, "ARCFILE")).strip() if kind == "raw" else None
    if kind == "raw":
        for key in (profile.dit_key, profile.ndit_key, *profile.setting_keywords):
            _require(header, key)
    setting_values = tuple((k, str(header[k]).strip()) for k in profile.setting_keywords if k in header)
    has_setting = len(setting_values) == len(profile.setting_keywords)
    full_ny = profile.full_ny
    window_ny = int(header.get(profile.window_ny_key, full_ny)) if profile.window_ny_key else full_ny
    starty = (
        int(header.get(profile.window_starty_key, default_window_starty))
        if profile.window_starty_key else 1
    )
    return FrameInfo(
        path=Path(path),
        kind=kind,
        profile=profile.name,
        arcfile=arcfile,
        raw_names=raw_names,
        setting_key=profile.setting_key(header) if has_setting else None,
        dit=float(header[profile.dit_key]) if profile.dit_key in header else None,
        ndit=int(header[profile.ndit_key]) if profile.ndit_key in header else None,
        window_ny=window_ny,
        window_starty=starty,
        mjd_obs=float(header["MJD-OBS"]) if "MJD-OBS" in header else None,
        date_obs=str(header["DATE-OBS"]) if "DATE-OBS" in header else None,
        lamp=str(header[profile.lamp_keyword]).strip()
        if profile.lamp_keyword and profile.lamp_keyword in header else None,
        setting_values=setting_values,
    )


def inspect_file(path: str | os.PathLike[str], default_window_starty: int = 1) -> FrameInfo:
    """Structure check, then classification: the whole "what is this file" question in one call."""
    check_structure(path)
    return classify(path, read_primary_header(path), default_window_starty)


def chip_data(hdul: fits.HDUList, profile: InstrumentProfile, detector: int,
              expected_ny: int | None = None) -> np.ndarray:
    """Chip ``detector`` of an open file as stored (memory-mapped, file byte order: no copy), shape-checked."""
    extname = profile.chip_extname(detector)
    try:
        hdu = hdul[extname]
    except KeyError:
        raise BadLayout(f"extension {extname} missing") from None
    data = hdu.data
    if data is None or data.ndim != 2:
        raise BadLayout(f"extension {extname} holds no 2-D image")
    ny = expected_ny if expected_ny is not None else data.shape[0]
    if data.shape != (ny, profile.nx):
        raise BadLayout(f"extension {extname} has shape {data.shape}, expected ({ny}, {profile.nx})")
    return data


def read_chip(hdul: fits.HDUList, profile: InstrumentProfile, detector: int,
              dtype: type = np.float32, expected_ny: int | None = None) -> np.ndarray:
    """Chip ``detector`` as a native-endian array of ``dtype``: one copy, straight from the memory map."""
    return np.asarray(chip_data(hdul, profile, detector, expected_ny), dtype=dtype)


def open_fits(path: str | os.PathLike[str]) -> fits.HDUList:
    """Open for reading with memory mapping and no implicit scaling (use as a context manager)."""
    return fits.open(path, memmap=True, do_not_scale_image_data=True)
