"""The quick FITS walk (qc.fitsio.quick_structure) never vouches for a file astropy would object to, and its
primary header says what astropy's does: differential checks over mutated small files."""

from __future__ import annotations

import gc
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from bench.bench_flood import other_product_bytes, raw_flat_bytes
from qc.errors import CorruptFile, FlatQCError
from qc.fitsio import FITS_BLOCK, _astropy_structure, classify, inspect_file, quick_structure, read_primary_header

ODD_CARDS = [
    "BITPIX  = 'sixteen'", "NAXIS1  =                   -5", "BLANK   =                    0", "BSCALE  = 'x'",
    "BZERO   =                    T", "GROUPS  =                    T", "PCOUNT  =                    3",
    "CONTINUE  'more'", "END     = 5", "KEY     = 'unterminated", "lower   =                    1",
    "ESO X   =                  1.5", "HIERARCH ESO DET DIT = 'text'", "DP1     = 'AXIS.1: 1'",
    "XTENSION= 'BINTABLE'", "NAXIS   =                    1", "SIMPLE  =                    F", "COMMENT odd",
]


def mutations(data: bytes, rng: random.Random) -> bytes:
    """One random change of the kind that breaks files: a byte, a card, the length, the padding."""
    out = bytearray(data)
    kind = rng.randrange(6)
    header_cards = [i for i in range(0, len(out), 80)
                    if out[i:i + 80].strip(b" ") and out[i] in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
    if kind == 0:
        out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 1:
        at = rng.choice(header_cards)
        out[at + rng.randrange(80)] = rng.choice(b" =-'/0123456789ETXABC.\x00~")
    elif kind == 2:
        at = rng.choice(header_cards)
        out[at:at + 80] = rng.choice(ODD_CARDS).ljust(80).encode()
    elif kind == 3:
        return bytes(out[:rng.randrange(1, len(out) // FITS_BLOCK) * FITS_BLOCK])
    elif kind == 4:
        return bytes(out) + rng.choice([b"\0" * FITS_BLOCK, b" " * FITS_BLOCK, b"x" * 80])
    else:
        at = rng.choice(header_cards)
        out[at + 80:at + 160], out[at:at + 80] = out[at:at + 80], out[at + 80:at + 160]
    return bytes(out)


@pytest.mark.parametrize("template", [raw_flat_bytes, other_product_bytes])
def test_the_quick_walk_vouches_only_for_what_astropy_accepts(template: object, tmp_path: Path) -> None:
    rng = random.Random(0)
    original = template()  # type: ignore[operator]
    assert quick_structure(original) is not None
    vouched = 0
    for index in range(300):
        data = mutations(original, rng)
        path = tmp_path / f"m{index}.fits"
        path.write_bytes(data)
        scan = quick_structure(data)
        if scan is None:
            continue
        vouched += 1
        _astropy_structure(path, len(data))  # raises if astropy objects
        header = fits.getheader(path)
        for key, value in scan.primary.items():
            assert header[key] == value or (value != value and header[key] != header[key]), (index, key)
        try:
            quick = inspect_file(path)
        except FlatQCError as exc:
            quick = type(exc).__name__ + str(exc)
        try:
            slow = classify(path, read_primary_header(path))  # what the astropy path says
        except FlatQCError as exc:
            slow = type(exc).__name__ + str(exc)
        assert slow == quick, index
    assert 0 < vouched < 300  # both outcomes occurred


def test_a_file_astropy_rejects_is_closed(tmp_path: Path) -> None:
    """A warning made an error inside ``fits.open`` must not leave the file open for the garbage collector."""
    path = tmp_path / "blank.fits"
    hdu = fits.PrimaryHDU(np.zeros((4, 4), dtype=np.int16))
    hdu.header["BLANK"] = 1.5
    hdu.writeto(path, output_verify="ignore")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CorruptFile, match="BLANK"):
            _astropy_structure(path, path.stat().st_size)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
