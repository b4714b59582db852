"""The one module of ``qc`` that touches FITS files: structure check, classification, chip reading.

Headers are read lazily (astropy memory maps the data); chips are read by ``EXTNAME``, never by position,
and converted once to native-endian arrays in physical units (BSCALE, BZERO and BLANK honoured, per detector).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from qc.errors import (
    BadData,
    BadHeader,
    BadLayout,
    CorruptFile,
    IncompleteFile,
    MissingKeyword,
    NotAFlatProduct,
    NotFits,
)
from qc.profiles import InstrumentProfile, detect_profile
from qc.validation import in_range, real_value, require, text_value, whole_value

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
    except OSError as exc:
        if exc.errno is not None:
            raise  # the system failed to read (EIO, ENOSPC...): not a fact about the bytes
        raise CorruptFile(f"unreadable FITS structure: {exc}") from exc
    except Exception as exc:  # astropy raises many types for broken files
        raise CorruptFile(f"unreadable FITS structure: {exc}") from exc


def read_primary_header(path: str | os.PathLike[str]) -> fits.Header:
    """The primary header; raises :class:`CorruptFile` when astropy cannot parse it."""
    try:
        return fits.getheader(path, 0)
    except Exception as exc:
        raise CorruptFile(f"cannot read the primary header: {exc}") from exc


def _raw_names(header: fits.Header) -> tuple[str, ...]:
    names = []
    i = 1
    while f"ESO PRO REC1 RAW{i} NAME" in header:
        names.append(str(header[f"ESO PRO REC1 RAW{i} NAME"]).strip())
        i += 1
    return tuple(sorted(names))


def classify(path: str | os.PathLike[str], header: fits.Header,
             default_window_starty: int = 1) -> FrameInfo:
    """Say what the file with this primary header is; raise a named :mod:`qc.errors` reason otherwise.

    Raws must carry DIT [s] > 0, NDIT >= 1 and the setting keywords; any of those (and the window, MJD-OBS) that
    is present on any file must have the right type and range (:mod:`qc.validation`).
    """
    where = Path(path).name
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
        raise MissingKeyword(f"{where}: product lists no raw inputs (missing 'ESO PRO REC1 RAW1 NAME')")
    arcfile = text_value(header, "ARCFILE", where) if kind == "raw" else None
    if kind == "raw":
        for key in (profile.dit_key, profile.ndit_key, *profile.setting_keywords):
            require(header, key, where)
    dit = ndit = None
    if profile.dit_key in header:
        dit = real_value(header, profile.dit_key, where)
        in_range(dit, profile.dit_key, where, 0.0, low_inclusive=False, unit=" s")
    if profile.ndit_key in header:
        ndit = whole_value(header, profile.ndit_key, where)
        in_range(ndit, profile.ndit_key, where, 1)
    setting_values = tuple((k, _setting_value(header, profile, k, where))
                           for k in profile.setting_keywords if k in header)
    has_setting = len(setting_values) == len(profile.setting_keywords)
    window_ny, starty = _window(header, profile, where, default_window_starty)
    return FrameInfo(
        path=Path(path),
        kind=kind,
        profile=profile.name,
        arcfile=arcfile,
        raw_names=raw_names,
        setting_key=profile.setting_key(header) if has_setting else None,
        dit=dit,
        ndit=ndit,
        window_ny=window_ny,
        window_starty=starty,
        mjd_obs=real_value(header, "MJD-OBS", where) if "MJD-OBS" in header else None,
        date_obs=text_value(header, "DATE-OBS", where) if "DATE-OBS" in header else None,
        lamp=str(header[profile.lamp_keyword]).strip()
        if profile.lamp_keyword and profile.lamp_keyword in header else None,
        setting_values=setting_values,
    )


def _setting_value(header: fits.Header, profile: InstrumentProfile, key: str, where: str) -> str:
    """A setting keyword's value as text, after checking its type (a real number or a non-empty string)."""
    if key in profile.numeric_setting_keywords:
        return str(real_value(header, key, where))
    return text_value(header, key, where)


def _window(header: fits.Header, profile: InstrumentProfile, where: str,
            default_starty: int) -> tuple[int, int]:
    """``(NY, STARTY)`` of the read-out window (full frame without the keywords); the window must lie on the
    detector: 1 <= NY <= full rows, STARTY >= 1, STARTY - 1 + NY <= full rows."""
    full = profile.full_ny
    ny = full
    if profile.window_ny_key and profile.window_ny_key in header:
        ny = whole_value(header, profile.window_ny_key, where)
        in_range(ny, profile.window_ny_key, where, 1, full)
    starty = 1
    if profile.window_starty_key:
        starty = default_starty
        if profile.window_starty_key in header:
            starty = whole_value(header, profile.window_starty_key, where)
        in_range(starty, profile.window_starty_key, where, 1, full - ny + 1)
    return ny, starty


def inspect_file(path: str | os.PathLike[str], default_window_starty: int = 1) -> FrameInfo:
    """Structure check, then classification: the whole "what is this file" question in one call."""
    check_structure(path)
    return classify(path, read_primary_header(path), default_window_starty)


ROWS_PER_BLOCK = 128
"""Rows scaled at a time: the float64 temporaries of BZERO + BSCALE x stored stay a few MB per detector."""


def _chip_hdu(hdul: fits.HDUList, profile: InstrumentProfile, detector: int,
              expected_ny: int | None) -> tuple[str, fits.ImageHDU]:
    """``(file name, HDU)`` of chip ``detector``, shape-checked against ``(expected_ny, nx)``."""
    where = Path(hdul.filename() or "?").name
    extname = profile.chip_extname(detector)
    try:
        hdu = hdul[extname]
    except KeyError:
        raise BadLayout(f"{where} detector {detector}: extension {extname} missing") from None
    data = hdu.data
    if data is None or data.ndim != 2:
        raise BadLayout(f"{where} detector {detector}: extension {extname} holds no 2-D image")
    ny = expected_ny if expected_ny is not None else data.shape[0]
    if data.shape != (ny, profile.nx):
        raise BadLayout(f"{where} detector {detector}: extension {extname} has shape {data.shape}, "
                        f"expected ({ny}, {profile.nx})")
    return where, hdu


def scaling(header: fits.Header, integer_data: bool, where: str) -> tuple[float, float, int | None]:
    """``(BSCALE, BZERO, BLANK)`` of an image HDU (defaults 1, 0, None): physical = BZERO + BSCALE x stored.

    BLANK (undefined pixels) only applies to integer data (FITS 4.0, 4.4.2.5); a float image's BLANK is ignored.
    """
    bscale = real_value(header, "BSCALE", where) if "BSCALE" in header else 1.0
    if bscale == 0:
        raise BadHeader(f"{where}: BSCALE = 0 maps every pixel to BZERO")
    bzero = real_value(header, "BZERO", where) if "BZERO" in header else 0.0
    blank = whole_value(header, "BLANK", where) if integer_data and "BLANK" in header else None
    return bscale, bzero, blank


def read_chip(hdul: fits.HDUList, profile: InstrumentProfile, detector: int, dtype: type = np.float32,
              expected_ny: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Chip ``detector`` in physical units, BZERO + BSCALE x stored, as a native-endian ``dtype`` array.

    Float ``dtype`` (raws [ADU], masters): scaled a block of rows at a time into ``out`` (allocated unless given),
    BLANK pixels become NaN. Integer ``dtype`` (BPMs): the physical values must be whole numbers that fit, and no
    pixel may be BLANK (a bad-pixel map must define every pixel); :class:`BadData` otherwise.
    """
    where, hdu = _chip_hdu(hdul, profile, detector, expected_ny)
    data = hdu.data
    integer_data = data.dtype.kind in "iu"
    bscale, bzero, blank = scaling(hdu.header, integer_data, where)
    target = np.dtype(dtype)
    if out is None:
        out = np.empty(data.shape, dtype=target)
    identity = bscale == 1 and bzero == 0
    if target.kind == "f":
        if identity and blank is None:
            out[...] = data
            return out
        for start in range(0, data.shape[0], ROWS_PER_BLOCK):
            rows = slice(start, start + ROWS_PER_BLOCK)
            stored = data[rows]
            out[rows] = stored if identity else bzero + np.float64(bscale) * stored
            if blank is not None:
                out[rows][stored == blank] = np.nan
        return out
    if blank is not None:
        undefined = int(np.count_nonzero(data == blank))
        if undefined:
            raise BadData(f"{where} detector {detector}: {undefined} pixel(s) undefined (BLANK = {blank}); "
                          "a bad-pixel map must define every pixel")
    if identity and np.can_cast(data.dtype, target, "safe"):
        out[...] = data
        return out
    limits = np.iinfo(target)
    for start in range(0, data.shape[0], ROWS_PER_BLOCK):
        rows = slice(start, start + ROWS_PER_BLOCK)
        physical = bzero + bscale * data[rows].astype(np.float64)
        wrong = ~(np.isfinite(physical) & (physical == np.round(physical))
                  & (physical >= limits.min) & (physical <= limits.max))
        if wrong.any():
            row, col = np.unravel_index(int(np.argmax(wrong)), wrong.shape)
            raise BadData(f"{where} detector {detector}: values must be whole numbers within {target} (after "
                          f"BSCALE/BZERO), e.g. {physical[row, col]:g} at row {start + row}, column {col}")
        out[rows] = physical
    return out


def open_fits(path: str | os.PathLike[str]) -> fits.HDUList:
    """Open for reading with memory mapping and no implicit scaling (:func:`read_chip` scales; use as a context
    manager)."""
    return fits.open(path, memmap=True, do_not_scale_image_data=True)
