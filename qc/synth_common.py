"""What the synthetic CRIRES and CRIRES+ nights share: detector noise and defects, reference pairs, junk files,
the manifest of a written night.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from qc.profiles import InstrumentProfile

GAIN = 30.0
"""Conversion gain [e-/ADU] of the synthetic detectors."""
READ_NOISE = 4.0
"""Read noise [ADU]."""
SATURATION = 60000.0
"""Raw values are clipped here [ADU]."""
HOT_FACTOR = 20.0
"""Hot pixels see this many times their illumination (clipped at saturation)."""
PRNU_SEED = 20100512
"""Pixel response is a property of the detector: the same for every set and the references."""


class NamedSpec(Protocol):
    @property
    def name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=NamedSpec)


@dataclass
class SynthSet:
    """A set as written, with its expected outcome under the contract's definitions."""

    name: str
    set_id: str
    setting_key: str
    n_raw: int
    raw_type: str
    master: str
    bpm: str
    raws: list[str]
    expected_verdict: str
    expected_reason: str
    has_reference: bool
    missing: list[str] = field(default_factory=list)


@dataclass
class JunkFile:
    path: str
    expected_state: str
    """``rejected`` or ``ignored``."""
    expected_reason: str


@dataclass
class NightManifest:
    night: str
    seed: int
    sets: list[SynthSet]
    junk: list[JunkFile]
    references: list[str]


def prnu(profile: InstrumentProfile, det: int, sigma: float) -> np.ndarray:
    """Fixed pixel response non-uniformity (mean 1, std ``sigma``) of detector ``det``."""
    rng = np.random.default_rng(PRNU_SEED + det)
    return 1.0 + sigma * rng.standard_normal((profile.full_ny, profile.nx))


def defects(profile: InstrumentProfile, det: int, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Fixed hot and cold pixel coordinates (flat indices) of detector ``det``."""
    rng = np.random.default_rng(PRNU_SEED * 7 + det)
    picks = rng.choice(profile.full_ny * profile.nx, size=2 * n, replace=False)
    return picks[:n], picks[n:]


def raw_chip(model: np.ndarray, hot: np.ndarray, cold: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One noisy raw chip [ADU] from a noise-free model [ADU]: shot + read noise, hot and cold pixels."""
    signal = model.copy()
    signal.flat[hot] *= HOT_FACTOR
    signal.flat[cold] *= 0.02
    noise = np.sqrt(signal / GAIN + READ_NOISE**2) * rng.standard_normal(signal.shape)
    return np.clip(signal + noise, -100.0, SATURATION).astype(np.float32)


def install_reference(master: Path, bpm: Path, out: Path, profile: InstrumentProfile, key: str,
                      n_defects: int = 6, bad_value: int = 1) -> list[Path]:
    """Move a synthetic product pair to ``<prefix>_FLAT_<key>.fits`` / ``<prefix>_BPM_<key>.fits`` in ``out``,
    with a BPM that differs from the product's: 3 of its ``n_defects`` hot pixels lose bit 1, 2 pixels per
    detector gain ``bad_value``; then remove the scratch folder the pair was written in."""
    from astropy.io import fits  # local: only the reference BPM is edited in place

    master_out = out / f"{profile.reference_prefix}_FLAT_{key}.fits"
    bpm_out = out / f"{profile.reference_prefix}_BPM_{key}.fits"
    master.replace(master_out)
    with fits.open(bpm) as hdul:
        for det in profile.detectors:
            data = hdul[profile.chip_extname(det)].data
            hot, _ = defects(profile, det, n_defects)
            data.flat[hot[:3]] &= ~1
            data[10 + det, 500:502] |= bad_value
        hdul.writeto(bpm_out, overwrite=True)
    scratch = bpm.parent
    for leftover in scratch.iterdir():
        leftover.unlink()
    scratch.rmdir()
    return [master_out, bpm_out]


def write_junk(product_dir: Path, good_file: Path, names: tuple[str, str, str, str],
               dark_catg: str = "CALPRO_DARK") -> list[tuple[Path, str, str]]:
    """Files that must be ignored or rejected with a reason, never crash anything: a truncated copy of
    ``good_file``, a text file, an empty file and a dark product (``names`` in that order)."""
    truncated, text, empty, dark = (product_dir / name for name in names)
    data = good_file.read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 1234])
    text.write_text("not a FITS file: shift notes\n")
    empty.write_bytes(b"")
    from astropy.io import fits

    header = fits.Header()
    header["INSTRUME"] = "CRIRES"
    header["HIERARCH ESO PRO CATG"] = dark_catg
    fits.PrimaryHDU(header=header).writeto(dark, overwrite=True)
    return [(truncated, "rejected", "truncated"), (text, "rejected", "not a FITS file"),
            (empty, "rejected", "empty"), (dark, "ignored", dark_catg)]


def select_specs(specs: Sequence[SpecT], names: Sequence[str] | None) -> list[SpecT]:
    """The specs called ``names`` (all when None); ValueError names unknown ones."""
    if names is None:
        return list(specs)
    unknown = set(names) - {s.name for s in specs}
    if unknown:
        raise ValueError(f"unknown synthetic sets {sorted(unknown)}; choose from {[s.name for s in specs]}")
    return [s for s in specs if s.name in names]


def write_manifest(out: Path, night: str, seed: int, entries: list[SynthSet],
                   junk: list[tuple[Path, str, str]], references: list[Path]) -> NightManifest:
    """Make every path relative to ``out`` and write ``out/manifest.json``."""

    def rel(path: str | Path) -> str:
        return str(Path(path).relative_to(out))

    for entry in entries:
        entry.master, entry.bpm, entry.raws = rel(entry.master), rel(entry.bpm), [rel(r) for r in entry.raws]
    manifest = NightManifest(
        night=night, seed=seed, sets=entries,
        junk=[JunkFile(rel(p), state, reason) for p, state, reason in junk],
        references=[rel(p) for p in references],
    )
    (out / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2))
    return manifest
