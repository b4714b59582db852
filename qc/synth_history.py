"""Synthetic history: weeks of CRIRES flat nights in a few settings of their own, for trends and statistical scores.

Each night has, per setting, one set of 3 raws (so it has a median S/N) and on some nights a second one, taken in
the afternoon before the night (MJD-OBS on the night ``DATE``, 18 h UT on). The sets have the physics of
:func:`qc.synth.write_set` (raws, master, BPM; same illumination, pixel response, defects and noise as the synthetic
night's), but a fixed DIT per setting, so that the lamp's brightness shows in ``mean_flux`` (and in ``median_snr``,
and a little in ``rms_master``: saturated hot pixels):

* a slow drift: the lamps lose ``drift_per_night`` (default 0.15 %) of their flux every night;
* one abrupt change: from ``step_night`` on, the lamp of ``step_setting`` gives ``step_factor`` (default 0.8, 20 %
  weaker) of its flux;
* noise: each set's flux is multiplied by ``1 + jitter * N(0, 1)`` (default 0.5 %), besides the pixels' own noise.

A set's lamp factor is ``(1 - drift_per_night) ** k * step * jitter`` with ``k`` the night's index (0 = first night),
``step`` = ``step_factor`` from ``step_night`` on in ``step_setting``, else 1. The raws are windowed read-outs
(32 rows by default, ``FLT_WIN``; 0.5 MB a raw) so that weeks of them stay small and quick.

Deterministic for a seed: :func:`history_plan` draws the plan (sets, factors, start times, a seed per set) from
the seed alone, and each set is written from its own seed, so any subset of the nights is written to the same bytes
as when all are written.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from astropy.time import Time

from qc.profiles import CRIRES
from qc.synth import HEALTHY, SetSpec, illumination, master_and_bpm, raw_cards, raw_name, write_products
from qc.synth_common import SynthSet, defects, prnu, raw_chip
from qc.synth_fits import write_mef

DRIFT_PER_NIGHT = 0.0015
"""Fraction of its flux a lamp loses each night (the slow drift)."""
STEP_FACTOR = 0.8
"""The lamp of the step's setting gives this fraction of its flux from the step's night on (the abrupt change)."""
JITTER = 0.005
"""Relative standard deviation of a set's flux about the drift (lamp and set-up noise)."""
SECOND_SET_CHANCE = 0.2
"""Chance that a setting has a second set on a night."""
RAWS_PER_SET = 3
"""Raws of every set: S/N needs 3 (contract 4), and sets of one N keep the same noise in their masters (a master of
1 raw has a larger rms_master, which the tight statistical bands of a steady lamp would flag)."""
AFTERNOON_UT_H = 18.0
"""The first set of a night starts this many hours after 0 h UT of the night's DATE (before the night)."""
HISTORY_PROFILE = CRIRES
"""The instrument the history is written for."""
HISTORY_MANIFEST = "history.json"
"""Written beside ``dfs_product/`` by :func:`write_history`."""


@dataclass(frozen=True)
class HistorySetting:
    """One setting of the history: its keys, a fixed DIT and the peak illumination at lamp factor 1."""

    name: str
    """Short name, part of the product file names."""
    cwlen: float
    baffle: float
    lamp: str
    dit: float
    """DIT [s] of every raw of the setting."""
    peak: float
    """Peak illumination [ADU] at lamp factor 1 (first night, before any step)."""
    window: tuple[int, int] = (32, 241)
    """``(NY, STARTY)`` of the read-out: rows 240..271 (numpy), the middle of the illuminated order."""

    @property
    def setting_key(self) -> str:
        return f"{self.cwlen:.3f}_{self.baffle:.3f}_{self.lamp}"


HISTORY_SETTINGS: tuple[HistorySetting, ...] = (
    HistorySetting("J1252", 1252.0, 25.0, "Halogen", dit=10.0, peak=5500.0),
    HistorySetting("H1645", 1645.0, 25.0, "Halogen", dit=15.0, peak=6000.0),
    HistorySetting("K2244", 2244.0, 15.0, "Halogen", dit=20.0, peak=5000.0),
)
"""Settings none of the synthetic night's sets use (:data:`qc.synth.CRIRES_NIGHT`), so its sets keep their own
trends; no references exist for them."""
STEP_SETTING = "H1645"
"""Default setting whose lamp gets weaker from the step's night on."""


@dataclass(frozen=True)
class PlannedSet:
    """One set of the history, before it is written: where, when, how many raws, and its lamp factors."""

    name: str
    """Unique within its night: ``<setting name>_<1 or 2>``."""
    night: str
    night_index: int
    setting: HistorySetting
    n_raw: int
    start_mjd: float
    """MJD-OBS of its first raw (the others follow 45 s apart)."""
    drift: float
    """``(1 - drift_per_night) ** night_index``."""
    step: float
    """``step_factor`` from the step's night on in the step's setting, else 1."""
    jitter: float
    """This set's noise factor."""
    seed: int
    """Seed of the set's own random numbers (pixel noise)."""

    @property
    def lamp_factor(self) -> float:
        """Flux of the lamp relative to the setting's first night: drift x step x jitter."""
        return self.drift * self.step * self.jitter

    @property
    def peak(self) -> float:
        return self.setting.peak * self.lamp_factor


@dataclass(frozen=True)
class HistoryPlan:
    """Every set of a history, in the order they are taken, with the knobs that made them."""

    seed: int
    nights: tuple[str, ...]
    sets: tuple[PlannedSet, ...]
    drift_per_night: float
    step_setting: str | None
    step_night: str | None
    step_factor: float
    jitter: float

    def sets_of(self, nights: list[str] | tuple[str, ...]) -> list[PlannedSet]:
        """The planned sets of ``nights``, in order."""
        wanted = set(nights)
        return [s for s in self.sets if s.night in wanted]


def nights_ending(last_night: str, days: int) -> tuple[str, ...]:
    """The ``days`` nights before ``last_night`` and ``last_night`` itself, oldest first (``DATE`` strings)."""
    last = date.fromisoformat(last_night)
    return tuple((last - timedelta(days=days - i)).isoformat() for i in range(days + 1))


def history_plan(last_night: str = "2010-05-12", days: int = 42, seed: int = 0, *,
                 settings: tuple[HistorySetting, ...] = HISTORY_SETTINGS,
                 drift_per_night: float = DRIFT_PER_NIGHT, step_setting: str | None = STEP_SETTING,
                 step_night: str | None = None, step_factor: float = STEP_FACTOR, jitter: float = JITTER,
                 second_set_chance: float = SECOND_SET_CHANCE) -> HistoryPlan:
    """Plan ``days`` nights of history before ``last_night`` and ``last_night`` itself (``days + 1`` nights).

    ``step_night`` (default: the night two thirds of the way, ``days * 2 // 3`` nights after the first) is the first
    night whose sets of ``step_setting`` (a name in ``settings``; None: no step) have the weaker lamp. No file is
    written; the same arguments give the same plan."""
    if days < 0:
        raise ValueError(f"days must be >= 0, not {days}")
    names = [s.name for s in settings]
    if step_setting is not None and step_setting not in names:
        raise ValueError(f"no history setting {step_setting!r}; choose from {names}")
    nights = nights_ending(last_night, days)
    if step_setting is not None and step_night is None:
        step_night = nights[days * 2 // 3]
    rng = np.random.default_rng([seed, 22])
    planned = []
    for night_index, night in enumerate(nights):
        mjd = Time(f"{night}T00:00:00", scale="utc").mjd + AFTERNOON_UT_H / 24 + rng.uniform(0, 0.5) / 24
        for setting_index, setting in enumerate(settings):
            n_sets = 2 if rng.random() < second_set_chance else 1
            for k in range(n_sets):
                stepped = step_setting == setting.name and step_night is not None and night >= step_night
                planned.append(PlannedSet(
                    name=f"{setting.name}_{k + 1}", night=night, night_index=night_index, setting=setting,
                    n_raw=RAWS_PER_SET, start_mjd=round(mjd, 8), drift=(1 - drift_per_night) ** night_index,
                    step=step_factor if stepped else 1.0, jitter=1.0 + jitter * float(rng.standard_normal()),
                    seed=int(np.random.SeedSequence([seed, night_index, setting_index, k]).generate_state(1)[0])))
                mjd += (RAWS_PER_SET * 45.0 + 600.0) / 86400
    return HistoryPlan(seed=seed, nights=nights, sets=tuple(planned), drift_per_night=drift_per_night,
                       step_setting=step_setting if step_night is not None else None, step_night=step_night,
                       step_factor=step_factor, jitter=jitter)


@lru_cache(maxsize=16)
def _detector(cwlen: float, det: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free illumination (peak 1) and pixel response (full frame), hot and cold pixels (flat indices) of
    detector ``det`` at ``cwlen``: what :func:`qc.synth.write_set` computes for every set, computed once here."""
    rms = HEALTHY.get(cwlen, (400.0, 0.09))[1]
    hot, cold = defects(CRIRES, det)
    return illumination(CRIRES, det, cwlen, slice(None)), prnu(CRIRES, det, rms), hot, cold


def _in_rows(flat_indices: np.ndarray, rows: slice) -> np.ndarray:
    """Full-frame flat indices of the pixels in ``rows``, as flat indices of the window."""
    y, x = np.divmod(flat_indices, CRIRES.nx)
    inside = (y >= rows.start) & (y < rows.stop)
    return (y[inside] - rows.start) * CRIRES.nx + x[inside]


def write_planned_set(out: Path, planned: PlannedSet) -> SynthSet:
    """Write one planned set under ``out`` (``dfs_product/FLT_WIN/<DATE>/``, ``dfs_raw/<DATE>/``) and return its
    manifest entry (paths relative to ``out``).

    The physics of :func:`qc.synth.write_set` (same illumination, pixel response, defects, noise, master and BPM),
    with the setting's fixed DIT, and the pixel noise drawn for the rows read out only (a window is that much
    quicker)."""
    setting = planned.setting
    spec = SetSpec(planned.name, setting.cwlen, setting.baffle, setting.lamp, planned.n_raw, planned.peak,
                   "passed" if planned.n_raw >= 3 else "not_assessable", window=setting.window)
    ny, starty = setting.window
    rows = slice(starty - 1, starty - 1 + ny)
    detectors = [_detector(setting.cwlen, det) for det in CRIRES.detectors]
    models = [spec.peak * illum[rows] * response[rows] for illum, response, _, _ in detectors]
    spots = [(_in_rows(hot, rows), _in_rows(cold, rows)) for _, _, hot, cold in detectors]
    raw_type = CRIRES.raw_type(ny)
    product_dir = out / "dfs_product" / ("FLT_WIN" if raw_type == "FLT_WIN" else "DARK") / planned.night
    rng = np.random.default_rng(planned.seed)
    names, raw_paths, raws, headers, mjd = [], [], [], [], planned.start_mjd
    for _ in range(planned.n_raw):
        name = raw_name(mjd)
        cards = raw_cards(spec, name, mjd, setting.dit, ny, starty)
        chips = [raw_chip(model, hot, cold, rng) for model, (hot, cold) in zip(models, spots, strict=True)]
        raw_paths.append(write_mef(out / "dfs_raw" / planned.night / name, CRIRES, cards, chips))
        names.append(name)
        headers.append(cards)
        raws.append(chips)
        mjd += 45.0 / 86400
    masters, bpms = master_and_bpm(raws, [spec.peak * illum for illum, _, _, _ in detectors],
                                    [np.concatenate((hot, cold)) for _, _, hot, cold in detectors], rows)
    entry = write_products(spec, product_dir, CRIRES, headers, names, raw_paths, masters, bpms)
    entry.master, entry.bpm = str(Path(entry.master).relative_to(out)), str(Path(entry.bpm).relative_to(out))
    entry.raws = [str(Path(raw).relative_to(out)) for raw in entry.raws]
    return entry


def write_history(out: Path, plan: HistoryPlan, nights: list[str] | tuple[str, ...] | None = None) -> dict:
    """Write the sets of ``nights`` (default: all of the plan) under ``out`` and ``out/history.json``
    (:func:`write_history_manifest`); returns that manifest."""
    out = Path(out)
    chosen = plan.sets_of(nights if nights is not None else plan.nights)
    entries = [(planned, write_planned_set(out, planned)) for planned in chosen]
    return write_history_manifest(out / HISTORY_MANIFEST, plan, entries)


def write_history_manifest(path: Path, plan: HistoryPlan, entries: list[tuple[PlannedSet, SynthSet]]) -> dict:
    """Write the manifest of written sets to ``path`` (JSON): the plan's knobs (seed, drift, step, jitter), and per
    set its entry (:class:`~qc.synth_common.SynthSet`: paths as the entry has them), night, DIT and lamp factors;
    returns it."""
    manifest = {
        "seed": plan.seed, "nights": sorted({p.night for p, _ in entries}), "drift_per_night": plan.drift_per_night,
        "step": {"setting": _key_of(plan, plan.step_setting), "night": plan.step_night, "factor": plan.step_factor},
        "jitter": plan.jitter,
        "sets": [asdict(entry) | {"night": planned.night, "night_index": planned.night_index,
                                  "mjd_obs": planned.start_mjd, "dit": planned.setting.dit, "drift": planned.drift,
                                  "step": planned.step, "jitter": planned.jitter, "lamp_factor": planned.lamp_factor}
                 for planned, entry in entries],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    return manifest


def _key_of(plan: HistoryPlan, name: str | None) -> str | None:
    for planned in plan.sets:
        if planned.setting.name == name:
            return planned.setting.setting_key
    return None
