"""Synthetic CRIRES+ night (contract 8), built on the noise and defect helpers of :mod:`qc.synth_common`.

Per detector (2048 x 2048, numpy rows = cross-dispersion): 6 echelle orders ~175 px tall whose centres follow
degree-2 traces, a faint scattered-light floor between them, a blaze along each order, light falling off in the
bottom 40 rows, and a 4-px border of light-insensitive reference pixels. Masters are float64: mean raw / smooth
illumination, median 1 over the in-order pixels, NaN between orders and on the border, with ``CHIPnERR.INT1``
error extensions. BPMs are int32 bit masks (1 dark = hot, 2 flat = cold, 4 detlin, 8 out of order, 16 edge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from astropy.time import Time

from qc.profiles import CRIRES_PLUS as PROFILE
from qc.sets import set_id_for
from qc.synth_common import (
    GAIN,
    READ_NOISE,
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
from qc.synth_fits import product_cards, write_mef

ORDERS_PER_DETECTOR = 6
ORDER_HEIGHT = 175.0
"""Illuminated height of an order across the dispersion [px]."""
ORDER_SOFTNESS = 2.0
"""Width of the order edges [px]."""
SCATTERED_LIGHT = 0.02
"""Illumination between orders, relative to the order centre."""
IN_ORDER_MARGIN = 6.0
"""The master is defined within ``ORDER_HEIGHT / 2 - IN_ORDER_MARGIN`` of a trace [px]; NaN elsewhere."""
EDGE = 4
"""Border of light-insensitive reference pixels [px] (BPM bit 16)."""
VIGNETTED_ROWS = 40
"""Bottom rows where the light falls off linearly to 30 % (contract 8)."""
PRNU_SIGMA = 0.05
"""Pixel response non-uniformity (std) of the synthetic CRIRES+ detectors."""
MEAN_FLUX = 400.0
"""Target in-order median flux [ADU/s]: the DIT is chosen to give it."""
N_DEFECTS = 40
"""Hot and cold pixels per detector (each)."""
DETLIN_PIXELS = 8
"""Pixels per detector flagged as non-linear (bit 4) without any effect on the data."""
BITS = dict(PROFILE.bpm_bits or {})


@dataclass(frozen=True)
class PlusSetSpec:
    """Knobs of one synthetic CRIRES+ set."""

    name: str
    wlen_id: str
    decker: str
    n_raw: int
    peak: float
    """Illumination [ADU] of an order centre at the blaze peak."""
    expected_verdict: str
    expected_reason: str = ""
    dit_override: tuple[int, float] | None = None
    """``(raw index, DIT)`` to make one raw inconsistent."""
    drop_raw: int | None = None
    """Index of a raw that is not written (incomplete set)."""

    @property
    def setting_key(self) -> str:
        return f"{self.wlen_id}_{self.decker}"


REFERENCE_KEY = "K2166_w_0.2"
"""The one setting key given reference frames (contract 8 defines none; this one exercises the reference path)."""

CRIRES_PLUS_NIGHT: tuple[PlusSetSpec, ...] = (
    PlusSetSpec("snr_pass", "K2166", "w_0.2", 4, 18000.0, "passed"),
    PlusSetSpec("single_flat", "H1567", "w_0.2", 1, 18000.0, "not_assessable", "N = 1"),
    PlusSetSpec("snr_fail", "L3262", "w_0.2", 3, 1200.0, "failed", "median_snr"),
    PlusSetSpec("overexposed", "Y1029", "w_0.4", 1, 45000.0, "failed", "max_flux"),
    PlusSetSpec("inconsistent_dit", "K2166", "w_0.4", 2, 18000.0, "rejected", "DIT", dit_override=(1, 7.5)),
    PlusSetSpec("incomplete", "J1228", "w_0.2", 2, 18000.0, "incomplete", "missing", drop_raw=1),
)


def order_traces(det: int) -> list[np.ndarray]:
    """Row of each order's centre at every column of detector ``det``: ``c0 + c1 t + c2 t^2``, t in [-1, 1]."""
    t = np.linspace(-1.0, 1.0, PROFILE.nx)
    spacing = PROFILE.full_ny / ORDERS_PER_DETECTOR
    tilt, curvature = 12.0 + 4.0 * det, -30.0 + 6.0 * det
    return [(k + 0.5) * spacing + tilt * t + curvature * t**2 for k in range(ORDERS_PER_DETECTOR)]


@lru_cache(maxsize=4)
def illumination(det: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free relative illumination (peak 1, float32) and the in-order mask of detector ``det``."""
    y = np.arange(PROFILE.full_ny, dtype=np.float32)[:, None]
    t = np.linspace(-1.0, 1.0, PROFILE.nx, dtype=np.float32)[None, :]
    light = np.full((PROFILE.full_ny, PROFILE.nx), SCATTERED_LIGHT, dtype=np.float32)
    in_order = np.zeros(light.shape, dtype=bool)
    for trace in order_traces(det):
        distance = np.abs(y - trace.astype(np.float32)[None, :])
        edge_steps = np.minimum((distance - ORDER_HEIGHT / 2) / ORDER_SOFTNESS, 50.0)  # exp stays finite
        light += (1 - SCATTERED_LIGHT) / (1 + np.exp(edge_steps))
        in_order |= distance <= ORDER_HEIGHT / 2 - IN_ORDER_MARGIN
    light *= 1.0 - 0.5 * t**2  # blaze along each order
    light[:VIGNETTED_ROWS] *= np.linspace(0.3, 1.0, VIGNETTED_ROWS, dtype=np.float32)[:, None]
    border = edge_mask()
    light[border] = 0.0
    in_order &= ~border
    return light, in_order


def edge_mask() -> np.ndarray:
    """True on the ``EDGE``-pixel border of a detector."""
    mask = np.zeros((PROFILE.full_ny, PROFILE.nx), dtype=bool)
    mask[:EDGE], mask[-EDGE:], mask[:, :EDGE], mask[:, -EDGE:] = True, True, True, True
    return mask


def bad_pixel_map(det: int, in_order: np.ndarray) -> np.ndarray:
    """int32 bit mask of detector ``det``: hot = dark, cold = flat, a few detlin, out of order, edge."""
    hot, cold = defects(PROFILE, det, N_DEFECTS)
    bpm = np.zeros(in_order.shape, dtype=np.int32)
    bpm.flat[hot] |= BITS["dark"]
    bpm.flat[cold] |= BITS["flat"]
    rng = np.random.default_rng(det)
    bpm.flat[rng.choice(bpm.size, DETLIN_PIXELS, replace=False)] |= BITS["detlin"]
    bpm[~in_order] |= BITS["outoforder"]
    bpm[edge_mask()] |= BITS["edge"]
    return bpm


def master_chip(total: np.ndarray, n_raw: int, model: np.ndarray,
                in_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 master (mean raw / model, median 1 over in-order pixels, NaN elsewhere) and its error."""
    mean = total / n_raw
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = np.where(in_order, mean / model, np.nan)
        error = np.sqrt(np.maximum(mean, 0.0) / GAIN + READ_NOISE**2) / np.sqrt(n_raw) / model
    norm = np.median(flat[in_order])
    return flat / norm, np.where(in_order, error / norm, np.nan)


def write_plus_set(spec: PlusSetSpec, product_dir: Path, raw_dir: Path, rng: np.random.Generator,
                   start_mjd: float) -> tuple[SynthSet, float]:
    """Write raws, master and BPM of one set, detector sums accumulated in float64 (no raw kept in memory)."""
    models = [spec.peak * illumination(det)[0] * prnu(PROFILE, det, PRNU_SIGMA) for det in PROFILE.detectors]
    in_order_median = np.median(np.concatenate([m[illumination(d)[1]] for d, m in zip(PROFILE.detectors, models,
                                                                                     strict=True)]))
    dit = round(float(in_order_median) / MEAN_FLUX, 3)
    spots = [defects(PROFILE, det, N_DEFECTS) for det in PROFILE.detectors]
    totals = [np.zeros(m.shape, dtype=np.float64) for m in models]
    names, raw_paths, mjd = [], [], start_mjd
    first_cards: dict[str, Any] = {}
    for index in range(spec.n_raw):
        iso = Time(mjd, format="mjd").isot
        name = f"CRIRE.{iso}.fits"
        cards = {
            "INSTRUME": "CRIRES", "ARCFILE": name, "DATE-OBS": iso, "MJD-OBS": mjd,
            "ESO DET SEQ1 DIT": spec.dit_override[1] if spec.dit_override and spec.dit_override[0] == index else dit,
            "ESO DET NDIT": 1, "ESO INS WLEN ID": spec.wlen_id, "ESO INS OPTI8 ID": spec.decker,
            "ESO DPR CATG": "CALIB", "ESO DPR TYPE": "FLAT", "ESO DPR TECH": "SPECTRUM",
        }
        first_cards = first_cards or cards
        chips = [raw_chip(m, hot, cold, rng) for m, (hot, cold) in zip(models, spots, strict=True)]
        for total, chip in zip(totals, chips, strict=True):
            total += chip
        names.append(name)
        if index != spec.drop_raw:
            raw_paths.append(write_mef(raw_dir / name, PROFILE, cards, chips))
        del chips
        mjd += 45.0 / 86400
    masters, errors, bpms = [], [], []
    for det, total in zip(PROFILE.detectors, totals, strict=True):
        light, in_order = illumination(det)
        flat, error = master_chip(total, spec.n_raw, spec.peak * light.astype(np.float64), in_order)
        masters.append(flat)
        errors.append((PROFILE.error_extname(det), error))
        bpms.append(bad_pixel_map(det, in_order))
    stem = f"cr2res_cal_flat_{spec.name}"
    master = write_mef(product_dir / f"{stem}_master.fits", PROFILE,
                       product_cards(first_cards, PROFILE.master_catg, names), masters, errors)
    bpm = write_mef(product_dir / f"{stem}_bpm.fits", PROFILE,
                    product_cards(first_cards, PROFILE.bpm_catg, names), bpms)
    entry = SynthSet(
        name=spec.name, set_id=set_id_for(names), setting_key=spec.setting_key, n_raw=spec.n_raw,
        raw_type=PROFILE.raw_type(PROFILE.full_ny), master=str(master), bpm=str(bpm),
        raws=[str(p) for p in raw_paths], expected_verdict=spec.expected_verdict,
        expected_reason=spec.expected_reason, has_reference=spec.setting_key == REFERENCE_KEY,
        missing=[names[spec.drop_raw]] if spec.drop_raw is not None else [],
    )
    return entry, mjd + 600.0 / 86400


def write_plus_reference(out: Path, seed: int) -> list[Path]:
    """``CRIRESP_FLAT_<key>.fits`` and ``CRIRESP_BPM_<key>.fits`` of :data:`REFERENCE_KEY` (contract 8)."""
    wlen_id, decker = REFERENCE_KEY.split("_", 1)
    spec = PlusSetSpec(f"ref_{REFERENCE_KEY}", wlen_id, decker, 2, 18000.0, "passed")
    scratch = out / ".scratch"
    entry, _ = write_plus_set(spec, scratch, scratch, np.random.default_rng(seed + 1000), 59000.0)
    return install_reference(Path(entry.master), Path(entry.bpm), out, PROFILE, REFERENCE_KEY,
                             n_defects=N_DEFECTS, bad_value=BITS["flat"])


def write_plus_night(out: Path, seed: int, night: str, sets: Sequence[str] | None = None) -> NightManifest:
    """Write a CRIRES+ night under ``out`` (see :func:`qc.synth.write_night`); exposures start at 14 h UT of the
    day after ``night``, so a CRIRES night of the same date (from 10 h) never shares an ``ARCFILE``."""
    rng = np.random.default_rng(seed)
    raw_dir = out / "dfs_raw" / night
    product_dir = out / "dfs_product" / "DARK" / night
    mjd = Time(f"{night}T00:00:00").mjd + 1 + 14 / 24
    entries = []
    for spec in select_specs(CRIRES_PLUS_NIGHT, sets):
        entry, mjd = write_plus_set(spec, product_dir, raw_dir, rng, mjd)
        entries.append(entry)
    references = write_plus_reference(out / "reference", seed)
    junk = write_junk(product_dir, Path(entries[0].bpm),
                      names=("r.CRIRE.cr2res_0000.fits", "cr2res_notes.fits", "cr2res_empty.fits",
                             "cr2res_cal_dark_master.fits"),
                      dark_catg="CAL_DARK_MASTER")
    return write_manifest(out, night, seed, entries, junk, references)
