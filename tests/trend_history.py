"""A scored QC1 history written by hand for the trend plot tests: one Halogen setting, a set a night, a slow drift, one
abrupt step (a lamp getting weaker) and one wild value, scored by flatqc's own re-scoring against a threshold file
with statistical thresholds (the trend charts draw what the ``scores`` rows hold)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from flatqc.db import crires_flat, sets
from flatqc.scoring import rescore_set, sets_to_rescore
from flatqc.threshold_files import Thresholds
from qc.config import QCConfig
from qc.records import QC1_NAMES
from qc.thresholds import built_in_thresholds, parse_threshold_file
from qc.times import mjd_to_datetime

KEY = "1090.400_25.000_Halogen"
"""The setting of the history (trend limits 200 .. 950 ADU/s and 0.08 .. 0.13, contract 7)."""
THRESHOLDS = """valid_from = 2000-01-01
[[threshold]]
parameter = "mean_flux"
kind = "statistical"
window_days = 20
[[threshold]]
parameter = "rms_master"
kind = "statistical"
window_days = 20
[[threshold]]
parameter = "badpix"
kind = "statistical"
window_days = 20
[[threshold]]
parameter = "badpix"
kind = "fixed"
high = 25
severity = "warn"
"""
"""Statistical thresholds on the three trend columns (20-day window, at least 5 earlier rows, k_warn 3, k_fail 5)
and a fixed warning above 25 bad pixels."""


@dataclass(frozen=True)
class History:
    """What was written: MJD-OBS of each night's set [d], the night of the step and the wild value."""

    mjd: np.ndarray
    step_night: int
    wild_night: int
    wild_detector: int


def write_scored_history(engine: Engine, nights: int = 60, detectors: tuple[int, ...] = (1, 2, 3, 4),
                         step_night: int = 45, wild_night: int = 30, seed: int = 3) -> History:
    """Insert ``nights`` sets of :data:`KEY` (one a night at 22:48 UTC from 2010-01-01): ``mean_flux`` drifts up by
    0.2 % a night with 1.5 % scatter and drops by 30 % from ``step_night`` on; on ``wild_night`` the last detector
    reads three times its flux; then score every set oldest first against :data:`THRESHOLDS`."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    mjd = 55197.95 + np.arange(nights, dtype=float)
    set_rows, qc1_rows = [], []
    for night_index, t in enumerate(mjd.tolist()):
        night = mjd_to_datetime(t - 0.5).date().isoformat()
        set_id = f"t{night_index:04d}"
        set_rows.append({"set_id": set_id, "version": f"v{night_index}", "night": night, "profile": "crires",
                         "setting_key": KEY, "raw_type": "FLAT", "n_raw": 3, "state": "done",
                         "verdict": "passed", "attempts": 1, "created_at": now, "finished_at": now})
        for det in detectors:
            flux = 500.0 * (1 + 0.002 * night_index) * (0.7 if night_index >= step_night else 1.0)
            flux *= 3.0 if (night_index, det) == (wild_night, detectors[-1]) else 1 + 0.015 * rng.standard_normal()
            values = dict.fromkeys(QC1_NAMES) | {
                "mean_flux": flux, "rms_master": 0.1 * (1 + 0.02 * rng.standard_normal()),
                "badpix": int(rng.poisson(12)), "max_flux": 8000.0, "median_snr": 300.0}
            qc1_rows.append({"set_id": set_id, "version": f"v{night_index}", "night": night, "mjd_obs": t,
                             "setting_key": KEY, "cwlen": 1090.4, "baffle_pos": 25.0, "lamp": "Halogen", "n_raw": 3,
                             "raw_type": "FLAT", "detector": det, **values, "certified": True, "verdict": "passed",
                             "master_file": f"{set_id}.fits", "processed_at": now})
    with engine.begin() as conn:
        conn.execute(insert(sets), set_rows)
        conn.execute(insert(crires_flat), qc1_rows)
    configs = {"crires": QCConfig()}
    file = parse_threshold_file("2000-01-01.toml", THRESHOLDS, QC1_NAMES, configs)
    thresholds = Thresholds((file,), built_in_thresholds(configs))
    for table, set_id in sets_to_rescore(engine, "2000-01-01", "2100-01-01"):
        rescore_set(engine, thresholds, table, set_id)
    return History(mjd, step_night, wild_night, detectors[-1])
