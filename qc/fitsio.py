"""The one module of ``qc`` that touches FITS files: structure check, classification, chip reading.

Headers are read lazily (astropy memory maps the data); chips are read by ``EXTNAME``, never by position,
and converted once to native-endian arrays in physical units (BSCALE, BZERO and BLANK honoured, per detector).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from qc.validation import in_range, mjd_value, real_value, require, text_value, whole_value

FITS_BLOCK = 2880
"""FITS files are made of 2880-byte blocks (FITS standard 3.1)."""
FITS_MAGIC = b"SIMPLE  ="
"""The first bytes of every FITS file."""


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


def check_structure(path: str | os.PathLike[str], data: bytes | None = None) -> QuickScan | None:
    """Raise unless ``path`` is a complete FITS file: magic, whole 2880-byte blocks, every HDU's data present.

    ``data``: the file's bytes if read already (the file is then not read again unless astropy must judge it).
    Returns the primary header when the quick walk (:func:`quick_structure`) vouched for the file, None when
    astropy did.
    """
    path = Path(path)
    if data is None:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(QUICK_MAX_BYTES + 1 if size <= QUICK_MAX_BYTES else len(FITS_MAGIC))
        if size <= QUICK_MAX_BYTES and len(head) == size:
            data = head
    else:
        size, head = len(data), data
    if size == 0:
        raise NotFits("empty file (0 bytes)")
    if head[:len(FITS_MAGIC)] != FITS_MAGIC:
        raise NotFits("not a FITS file (does not start with SIMPLE)")
    if size % FITS_BLOCK:
        raise IncompleteFile(f"size {size} bytes is not a whole number of 2880-byte FITS blocks (truncated?)")
    if data is not None and len(data) == size:
        scan = quick_structure(data)
        if scan is not None:
            return scan
    _astropy_structure(path, size)
    return None


def _astropy_structure(path: Path, size: int) -> None:
    """The full check by astropy (every card verified, warnings are errors)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            # the file is ours to close: astropy leaves one it opened to the garbage collector when it raises
            with open(path, "rb") as fh, fits.open(fh, memmap=True, lazy_load_hdus=False) as hdul:
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


QUICK_MAX_BYTES = 4 * 1024 * 1024
"""Files up to this size are read once into memory and walked by :func:`quick_structure` before astropy."""
_CARD_CACHE_SIZE = 50_000
_card_cache: dict[bytes, tuple[bool, str, object]] = {}
_COMMENTARY = frozenset({"", "COMMENT", "HISTORY"})
_BLANK_CARD = b" " * 80
_END_CARD = b"END" + b" " * 77
_PRINTABLE = re.compile(rb"[ -~]*")
_BITPIX = (8, 16, 32, 64, -32, -64)
_SIGNATURE = b"SIMPLE  =" + b" " * 20 + b"T"
_ONCE_ONLY = frozenset({"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "BLANK", "BSCALE", "BZERO",
                        "GROUPS", "EXTEND"})


def _card(image: bytes) -> tuple[bool, str, object]:
    """``(clean, keyword, value)`` of one 80-byte card, cached by its bytes: clean if astropy parses and verifies
    it without a warning (what :func:`check_structure` turns into a rejection)."""
    known = _card_cache.get(image)
    if known is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                card = fits.Card.fromstring(image.decode("ascii"))
                _ = card.image  # verifies the card ('fix+warn'), as reading the file does
                # a record-valued card (``DP1 = 'AXIS.1: 1'``) is looked up differently: left to astropy
                known = (card.keyword == card.rawkeyword, card.keyword.upper(), card.value)
        except Exception:  # noqa: BLE001 - anything astropy objects to: let astropy judge the whole file
            known = (False, "", None)
        if len(_card_cache) >= _CARD_CACHE_SIZE:
            _card_cache.clear()
        _card_cache[image] = known
    return known


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class QuickScan:
    """What :func:`quick_structure` found: the primary header's keywords (first occurrence, commentary cards left
    out) with the values astropy parses, and where the primary header ends."""

    primary: dict[str, object]
    primary_end: int


def quick_structure(data: bytes) -> QuickScan | None:
    """The primary header if ``data`` is, without doubt, a whole FITS file that astropy reads without complaint;
    None when in doubt (then astropy judges it: the quick walk never rejects anything).

    No doubt means: printable ASCII headers of cards astropy verifies cleanly (cached per card), a primary HDU
    (no random groups) and ``IMAGE`` extensions only, the mandatory keywords in their places with plain values,
    the END card and blank padding as written by the standard, BLANK/BSCALE/BZERO numbers astropy takes without
    a warning, and the last HDU's padded data ending exactly at the end of the file.
    """
    if data[:30] != _SIGNATURE:
        return None  # astropy accepts a SIMPLE card out of format only with a warning
    offset, size, primary = 0, len(data), None
    while offset < size:
        cards: dict[str, object] = {}
        order: list[str] = []
        end = None
        position = offset
        while end is None:
            if position + FITS_BLOCK > size:
                return None  # no END card before the end of the file
            block = data[position:position + FITS_BLOCK]
            if not _PRINTABLE.fullmatch(block):
                return None
            for start in range(0, FITS_BLOCK, 80):
                image = block[start:start + 80]
                if end is not None:
                    if image != _BLANK_CARD:
                        return None
                    continue
                if image[:8] == b"END     ":
                    if image != _END_CARD:
                        return None
                    end = position + FITS_BLOCK
                    continue
                if image == _BLANK_CARD:
                    continue
                clean, keyword, value = _card(image)
                if not clean or keyword in ("CONTINUE", "END") or keyword in cards and (
                        keyword in _ONCE_ONLY or keyword.startswith("NAXIS")):
                    return None
                cards.setdefault(keyword, value)
                order.append(keyword)
            position += FITS_BLOCK
        span = _data_bytes(cards, order, primary=offset == 0)
        if span is None:
            return None
        if primary is None:
            primary = QuickScan({k: v for k, v in cards.items() if k not in _COMMENTARY}, end)
        offset = end + -(-span // FITS_BLOCK) * FITS_BLOCK
    return primary if offset == size else None


def _data_bytes(cards: dict[str, object], order: list[str], primary: bool) -> int | None:
    """Bytes of an HDU's data from its mandatory keywords; None if the HDU is anything but plain."""
    first = "SIMPLE" if primary else "XTENSION"
    naxis = cards.get("NAXIS")
    if not _whole_number(naxis) or not 0 <= naxis <= 999:  # type: ignore[operator]
        return None
    axes = [f"NAXIS{i}" for i in range(1, naxis + 1)]  # type: ignore[operator]
    if order[:3 + len(axes)] != [first, "BITPIX", "NAXIS", *axes]:
        return None
    if primary and (cards["SIMPLE"] is not True or "GROUPS" in cards or "PCOUNT" in cards or "GCOUNT" in cards):
        return None
    if not primary and (cards["XTENSION"] != "IMAGE" or cards.get("PCOUNT") != 0 or cards.get("GCOUNT") != 1
                        or order[3 + len(axes):5 + len(axes)] != ["PCOUNT", "GCOUNT"]):
        return None
    bitpix = cards["BITPIX"]
    if not _whole_number(bitpix) or bitpix not in _BITPIX:
        return None
    for key in ("BSCALE", "BZERO"):
        if key in cards and (isinstance(cards[key], bool) or not isinstance(cards[key], int | float)):
            return None
    if "BLANK" in cards and (not _whole_number(cards["BLANK"]) or bitpix < 0):
        return None
    count = abs(bitpix) // 8 if naxis else 0
    for axis in axes:
        length = cards[axis]
        if not _whole_number(length) or length < 0:  # type: ignore[operator]
            return None
        count *= length  # type: ignore[operator]
    return count


def read_primary_header(path: str | os.PathLike[str]) -> fits.Header:
    """The primary header; raises :class:`CorruptFile` when astropy cannot parse it."""
    try:
        return fits.getheader(path, 0)
    except Exception as exc:
        raise CorruptFile(f"cannot read the primary header: {exc}") from exc


def _raw_names(header: Mapping[str, Any]) -> tuple[str, ...]:
    names = []
    i = 1
    while f"ESO PRO REC1 RAW{i} NAME" in header:
        names.append(str(header[f"ESO PRO REC1 RAW{i} NAME"]).strip())
        i += 1
    return tuple(sorted(names))


def classify(path: str | os.PathLike[str], header: Mapping[str, Any],
             window_starty_defaults: Mapping[str, int] | None = None) -> FrameInfo:
    """Say what the file with this primary header is; raise a named :mod:`qc.errors` reason otherwise.

    ``window_starty_defaults``: per profile name, the first window row (1-based) when ``DET WINDOW STARTY`` is
    absent (contract 3, [convention]; 1 for a profile not named).

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
    window_ny, starty = _window(header, profile, where, (window_starty_defaults or {}).get(profile.name, 1))
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
        mjd_obs=mjd_value(header, "MJD-OBS", where) if "MJD-OBS" in header else None,
        date_obs=text_value(header, "DATE-OBS", where) if "DATE-OBS" in header else None,
        lamp=str(header[profile.lamp_keyword]).strip()
        if profile.lamp_keyword and profile.lamp_keyword in header else None,
        setting_values=setting_values,
    )


def _setting_value(header: Mapping[str, Any], profile: InstrumentProfile, key: str, where: str) -> str:
    """A setting keyword's value as text, after checking its type (a real number or a non-empty string)."""
    if key in profile.numeric_setting_keywords:
        return str(real_value(header, key, where))
    return text_value(header, key, where)


def _window(header: Mapping[str, Any], profile: InstrumentProfile, where: str,
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


def inspect_file(path: str | os.PathLike[str], window_starty_defaults: Mapping[str, int] | None = None,
                 data: bytes | None = None) -> FrameInfo:
    """Structure check, then classification: the whole "what is this file" question in one call.

    ``data``: the file's bytes if read already; a small file is read once and its primary header parsed from the
    same bytes the structure was checked on."""
    if data is None and Path(path).stat().st_size <= QUICK_MAX_BYTES:
        with open(path, "rb") as fh:
            data = fh.read()
    scan = check_structure(path, data)
    if scan is not None:
        return classify(path, scan.primary, window_starty_defaults)
    return classify(path, read_primary_header(path), window_starty_defaults)


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

    The chip's stored pixels are dropped once converted, so that astropy releases the file's memory map when no
    other chip of it is held: a file can stay open for every detector without its pages staying resident.
    """
    where, hdu = _chip_hdu(hdul, profile, detector, expected_ny)
    try:
        return _physical(hdu.data, hdu.header, where, detector, np.dtype(dtype), out)
    finally:
        del hdu.data


def _physical(data: np.ndarray, header: fits.Header, where: str, detector: int, target: np.dtype,
              out: np.ndarray | None) -> np.ndarray:
    """Stored values ``data`` as physical values of dtype ``target``, into ``out`` (see :func:`read_chip`)."""
    integer_data = data.dtype.kind in "iu"
    bscale, bzero, blank = scaling(header, integer_data, where)
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
    """Open for reading with memory mapping and no implicit scaling (:func:`read_chip` scales and releases each
    chip's pages; use as a context manager)."""
    return fits.open(path, memmap=True, do_not_scale_image_data=True)
