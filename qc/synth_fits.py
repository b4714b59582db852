"""Writing synthetic CRIRES-like FITS files: headers per contract section 3, one image extension per detector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from qc.profiles import InstrumentProfile


def primary_header(cards: Mapping[str, Any]) -> fits.Header:
    """A primary header from ``{keyword: value}``; ``ESO ...`` keywords become HIERARCH cards."""
    header = fits.Header()
    for key, value in cards.items():
        header[f"HIERARCH {key}" if key.startswith("ESO ") else key] = value
    return header


def write_mef(path: Path, profile: InstrumentProfile, cards: Mapping[str, Any],
              chips: Sequence[np.ndarray], extra: Sequence[tuple[str, np.ndarray]] = ()) -> Path:
    """Primary header only, then ``CHIPn.INT1`` extensions (plus ``extra`` named extensions) with ``DET CHIP NO``."""
    hdus: list[fits.hdu.base.ExtensionHDU] = []
    for det, data in zip(profile.detectors, chips, strict=True):
        ext = fits.ImageHDU(data=data, name=profile.chip_extname(det))
        ext.header["HIERARCH ESO DET CHIP NO"] = det
        hdus.append(ext)
    for name, data in extra:
        hdus.append(fits.ImageHDU(data=data, name=name))
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(header=primary_header(cards)), *hdus]).writeto(path, overwrite=True)
    return path


def product_cards(raw_cards: Mapping[str, Any], catg: str, raw_names: Sequence[str]) -> dict[str, Any]:
    """Product primary header: the first raw's keywords (no ARCFILE/DPR), PRO CATG and the raw provenance list."""
    cards = {k: v for k, v in raw_cards.items() if k != "ARCFILE" and not k.startswith("ESO DPR")}
    cards["ESO PRO CATG"] = catg
    for index, name in enumerate(raw_names, start=1):
        cards[f"ESO PRO REC1 RAW{index} NAME"] = name
        cards[f"ESO PRO REC1 RAW{index} CATG"] = "CAL_FLAT"
    return cards
