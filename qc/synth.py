"""Synthetic CRIRES night: the one fixture for tests, demo and benchmarks (deterministic for a seed).

Physics of a raw flat, per detector (numpy rows = along the slit, columns = dispersion):
``level * band(y) * blaze(x) * prnu * vignetting`` [ADU], then shot noise (gain [e-/ADU]) and read noise,
hot pixels (saturated) and cold pixels, both flagged in the BPM. The band is one illuminated echelle order
across the 4-chip mosaic; the blaze falls off towards the mosaic ends; short wavelengths are vignetted on the
outer columns of the first and last detector. Masters are the mean raw divided by the smooth illumination
model and normalised to median 1, as a pipeline would make them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from qc.config import CRIRES_REFERENCE_KEYS
from qc.profiles import CRIRES, InstrumentProfile
from qc.sets import set_id_for
from qc.synth_common import (
    JunkFile,
    NightManifest,
    SynthSet,
    defects,
    install_reference,
    prnu,
    raw_chip,
    select_specs,
    write_junk,
    write_manifest,
)
from qc.synth_crires_plus import write_plus_night
from qc.synth_fits import product_cards, write_mef

HEALTHY = {1090.4: (517.0, 0.091), 2199.1: (400.0, 0.09), 3218.6: (255.0, 0.125), 4092.9: (400.0, 0.078)}
"""Typical mean_flux [ADU/s] and rms_master per wavelength (contract 7; 2199.1 nm assumed)."""


@dataclass(frozen=True)
class SetSpec:
    """Knobs of one synthetic set."""

    name: str
    cwlen: float
    baffle: float
    lamp: str
    n_raw: int
    peak: float
    """Peak illumination [ADU] of the band centre at the blaze peak."""
    expected_verdict: str
    expected_reason: str = ""
    window: tuple[int, int] | None = None
    """``(NY, STARTY)`` of a windowed read-out."""
    dit_override: tuple[int, float] | None = None
    """``(raw index, DIT)`` to make one raw inconsistent."""
    drop_raw: int | None = None
    """Index of a raw that is not written (incomplete set)."""

    @property
    def setting_key(self) -> str:
        return f"{self.cwlen:.3f}_{self.baffle:.3f}_{self.lamp}"


CRIRES_NIGHT: tuple[SetSpec, ...] = (
    SetSpec("no_reference", 2340.0, 25.0, "Halogen", 1, 6000.0, "not_assessable", "no reference"),
    SetSpec("single_flat", 1090.4, 25.0, "Halogen", 1, 6000.0, "not_assessable", "N = 1"),
    SetSpec("snr_pass", 3218.6, 25.0, "Halogen", 4, 6000.0, "passed"),
    SetSpec("snr_fail", 4092.9, 25.0, "Halogen", 3, 900.0, "failed", "median_snr"),
    SetSpec("overexposed", 1090.4, 25.0, "Halogen", 1, 14000.0, "failed", "max_flux"),
    SetSpec("windowed", 2199.1, 15.0, "Halogen", 3, 6000.0, "passed", window=(256, 129)),
    SetSpec("emitter", 2199.1, 15.0, "Emitter", 1, 5000.0, "not_assessable"),
    SetSpec("inconsistent_dit", 3218.6, 25.0, "Halogen", 3, 6000.0, "rejected", "DIT", dit_override=(1, 7.5)),
    SetSpec("incomplete", 4092.9, 25.0, "Halogen", 2, 6000.0, "incomplete", "missing", drop_raw=1),
)


def illumination(profile: InstrumentProfile, det: int, cwlen: float, rows: slice) -> np.ndarray:
    """Noise-free relative illumination (peak 1) of detector ``det``: band x blaze x vignetting."""
    y = np.arange(profile.full_ny, dtype=np.float64)[rows]
    half, centre, soft = 0.40 * profile.full_ny, 0.5 * profile.full_ny, 0.02 * profile.full_ny
    band = 0.03 + 0.97 / (1 + np.exp((np.abs(y - centre) - half) / soft))
    x = (det - 1) * profile.nx + np.arange(profile.nx, dtype=np.float64)
    mosaic = profile.n_detectors * profile.nx
    blaze = 1.0 - 0.45 * ((x - mosaic / 2) / (mosaic / 2)) ** 2
    vignetting = np.ones(profile.nx)
    if cwlen < 1500:
        ramp = np.clip(np.arange(profile.nx) / 256.0, 0, 1)
        if det == 1:
            vignetting = 0.35 + 0.65 * ramp
        elif det == profile.n_detectors:
            vignetting = (0.35 + 0.65 * ramp)[::-1]
    return band[:, None] * (blaze * vignetting)[None, :]


def master_and_bpm(raws: list[list[np.ndarray]], models: list[np.ndarray], hot_cold: list[np.ndarray],
                    rows: slice) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per detector: normalised master (mean raw / smooth illumination ``models``, median 1: the pixel
    response remains) and 0/1 BPM (int16)."""
    masters, bpms = [], []
    for det_index, model in enumerate(models):
        mean = np.mean([frames[det_index] for frames in raws], axis=0, dtype=np.float64)
        flat = mean / model[rows]
        masters.append((flat / np.median(flat)).astype(np.float32))
        bpm = np.zeros(model.shape, dtype=np.int16)
        bpm.flat[hot_cold[det_index]] = 1
        bpms.append(bpm[rows])
    return masters, bpms


def raw_cards(spec: SetSpec, name: str, mjd: float, dit: float, ny: int, starty: int) -> dict[str, Any]:
    """Primary header keywords of a raw flat of ``spec`` named ``name``, taken at ``mjd`` (contract 3)."""
    return {
        "INSTRUME": "CRIRES", "ARCFILE": name, "DATE-OBS": Time(mjd, format="mjd").isot, "MJD-OBS": mjd,
        "ESO DET DIT": dit, "ESO DET NDIT": 1, "ESO DET WINDOW NY": ny, "ESO DET WINDOW STARTY": starty,
        "ESO INS WLEN CWLEN": spec.cwlen, "ESO INS BAFFLE POS": spec.baffle, "ESO INS LAMP1 NAME": spec.lamp,
        "ESO DPR CATG": "CALIB", "ESO DPR TYPE": "FLAT", "ESO DPR TECH": "SPECTRUM",
    }


def raw_name(mjd: float) -> str:
    """``CRIRE.<ISO time>.fits``, the raw's ARCFILE and file name."""
    return f"CRIRE.{Time(mjd, format='mjd').isot}.fits"


def write_set(spec: SetSpec, product_dir: Path, raw_dir: Path, night: str, rng: np.random.Generator,
              start_mjd: float, profile: InstrumentProfile = CRIRES) -> tuple[SynthSet, float]:
    """Write raws, master and BPM of one set; return its manifest entry and the MJD after its last raw."""
    flux, rms = HEALTHY.get(spec.cwlen, (400.0, 0.09))
    ny, starty = spec.window or (profile.full_ny, 1)
    rows = slice(starty - 1, starty - 1 + ny)
    illum = [illumination(profile, det, spec.cwlen, slice(None)) for det in profile.detectors]
    models = [spec.peak * i * prnu(profile, det, rms) for det, i in zip(profile.detectors, illum, strict=True)]
    spots = [defects(profile, det) for det in profile.detectors]
    dit = round(float(np.median(np.concatenate([m[rows].ravel() for m in models]))) / flux, 3)
    names, raw_paths, raws, headers, mjd = [], [], [], [], start_mjd
    for index in range(spec.n_raw):
        name = raw_name(mjd)
        cards = raw_cards(spec, name, mjd, spec.dit_override[1] if spec.dit_override and spec.dit_override[0] == index
                          else dit, ny, starty)
        headers.append(cards)
        chips = [raw_chip(m, hot, cold, rng)[rows] for m, (hot, cold) in zip(models, spots, strict=True)]
        raws.append(chips)
        names.append(name)
        if index != spec.drop_raw:
            raw_paths.append(write_mef(raw_dir / name, profile, cards, chips))
        mjd += 45.0 / 86400
    masters, bpms = master_and_bpm(raws, [spec.peak * i for i in illum], [np.concatenate(s) for s in spots], rows)
    entry = write_products(spec, product_dir, profile, headers, names, raw_paths, masters, bpms)
    return entry, mjd + 600.0 / 86400


def write_products(spec: SetSpec, product_dir: Path, profile: InstrumentProfile, headers: list[dict[str, Any]],
                   names: list[str], raw_paths: list[Path], masters: list[np.ndarray],
                   bpms: list[np.ndarray]) -> SynthSet:
    """Write the master and BPM of a set whose raws are written (their headers and names in order) and return the
    set's manifest entry."""
    ny = int(headers[0]["ESO DET WINDOW NY"])
    stem = f"crires_spec_flat_{spec.name}"
    master = write_mef(product_dir / f"{stem}.fits", profile,
                       product_cards(headers[0], profile.master_catg, names), masters)
    bpm = write_mef(product_dir / f"{stem}_bpm.fits", profile,
                    product_cards(headers[0], profile.bpm_catg, names), bpms)
    return SynthSet(
        name=spec.name, set_id=set_id_for(names), setting_key=spec.setting_key, n_raw=spec.n_raw,
        raw_type=profile.raw_type(ny), master=str(master), bpm=str(bpm), raws=[str(p) for p in raw_paths],
        expected_verdict=spec.expected_verdict, expected_reason=spec.expected_reason,
        has_reference=spec.setting_key in CRIRES_REFERENCE_KEYS,
        missing=[names[spec.drop_raw]] if spec.drop_raw is not None else [],
    )


def write_reference(key: str, out: Path, profile: InstrumentProfile = CRIRES, seed: int = 0) -> list[Path]:
    """Reference master flat and BPM of ``key`` (full frame): a good product with slightly different bad pixels."""
    cwlen, baffle, lamp = key.split("_")
    spec = SetSpec(f"ref_{key}", float(cwlen), float(baffle), lamp, 3, 6000.0, "passed")
    rng = np.random.default_rng(seed)
    scratch = out / ".scratch"
    entry, _ = write_set(spec, scratch, scratch, "reference", rng, 55000.0, profile)
    return install_reference(Path(entry.master), Path(entry.bpm), out, profile, key)


CRIRES_JUNK_NAMES = ("r.CRIRE.2010-05-13T11:00:00.000_0000.fits", "QC_notes.fits", "empty_0000.fits",
                     "crires_spec_dark_master.fits")
"""File names of the junk files: truncated copy, text file, empty file, dark product."""


def write_night(out: Path, seed: int = 0, night: str | None = None, profile: str = "crires",
                sets: Sequence[str] | None = None) -> NightManifest:
    """Write a whole night under ``out`` (``dfs_product/``, ``dfs_raw/``, ``reference/``, ``manifest.json``).

    ``profile`` ``crires`` (night 2010-05-12 by default) or ``crires+`` (2023-03-15, :mod:`qc.synth_crires_plus`);
    ``sets`` picks some of the night's sets by name (all by default).
    """
    if profile == "crires+":
        return write_plus_night(Path(out), seed, night or "2023-03-15", sets)
    if profile != "crires":
        raise ValueError(f"no synthetic nights for profile {profile!r}; choose crires or crires+")
    out = Path(out)
    night = night or "2010-05-12"
    rng = np.random.default_rng(seed)
    raw_dir = out / "dfs_raw" / night
    mjd = Time(f"{night}T00:00:00").mjd + 1 + 10 / 24
    entries = []
    for spec in select_specs(CRIRES_NIGHT, sets):
        raw_type = CRIRES.raw_type(spec.window[0] if spec.window else CRIRES.full_ny)
        product_dir = out / "dfs_product" / ("FLT_WIN" if raw_type == "FLT_WIN" else "DARK") / night
        entry, mjd = write_set(spec, product_dir, raw_dir, night, rng, mjd)
        entries.append(entry)
    references = [p for key in CRIRES_REFERENCE_KEYS for p in write_reference(key, out / "reference", seed=seed)]
    junk = write_junk(out / "dfs_product" / "DARK" / night, Path(entries[0].master), CRIRES_JUNK_NAMES)
    return write_manifest(out, night, seed, entries, junk, references)


def load_manifest(path: Path) -> NightManifest:
    """Read a ``manifest.json`` written by :func:`write_night`."""
    data = json.loads(Path(path).read_text())
    return NightManifest(
        night=data["night"], seed=data["seed"],
        sets=[SynthSet(**s) for s in data["sets"]], junk=[JunkFile(**j) for j in data["junk"]],
        references=data["references"],
    )
