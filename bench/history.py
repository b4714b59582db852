"""A generated QC1 history (years of nightly sets) for the dashboard benchmark and the trend tests.

Rows go straight into ``sets`` and ``crires_flat`` (no FITS files): values scatter around the contract's typical
healthy figures per setting, with about one outlier in fifty, so the trend pages have something to mark.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from astropy.time import Time
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from flatqc.db import crires_flat, sets
from qc.records import QC1_NAMES

TYPICAL = {
    "1090.400_25.000_Halogen": (517.0, 0.091),
    "3218.600_25.000_Halogen": (255.0, 0.125),
    "4092.900_25.000_Halogen": (400.0, 0.078),
    "2199.100_15.000_Halogen": (400.0, 0.090),
    "2199.100_15.000_Emitter": (300.0, 0.100),
}
"""Setting key -> (mean_flux [ADU/s], rms_master) around which the history scatters (contract 7)."""


def write_history(engine: Engine, n_sets: int, first_night: str = "2006-04-01", seed: int = 1,
                  sets_per_night: int = 3, n_detectors: int = 4) -> int:
    """Insert ``n_sets`` processed sets (``n_detectors`` QC1 rows each), ``sets_per_night`` a night, rotating
    through the setting keys of :data:`TYPICAL`; returns the number of QC1 rows written."""
    rng = np.random.default_rng(seed)
    keys = list(TYPICAL)
    start_mjd = Time(f"{first_night}T00:00:00").mjd
    set_rows, qc1_rows = [], []
    now = datetime.now(UTC).replace(tzinfo=None)
    for index in range(n_sets):
        night_index, slot = divmod(index, sets_per_night)
        mjd = start_mjd + night_index + 0.9 + 0.01 * slot
        night = Time(mjd - 0.5, format="mjd").iso[:10]
        key = keys[index % len(keys)]
        flux, rms = TYPICAL[key]
        set_id = f"h{index:011x}"
        outlier = rng.random() < 0.02
        verdict = "failed" if outlier else "not_assessable"
        set_rows.append({"set_id": set_id, "version": f"history-{index}", "night": night, "profile": "crires",
                         "setting_key": key, "raw_type": "FLAT", "n_raw": 1, "state": "done", "verdict": verdict,
                         "attempts": 1, "created_at": now, "finished_at": now})
        cwlen, baffle, lamp = key.split("_")
        for det in range(1, n_detectors + 1):
            values = dict.fromkeys(QC1_NAMES)
            values |= {"mean_flux": flux * (2.2 if outlier else 1.0) * (1 + 0.05 * rng.standard_normal()),
                       "rms_master": rms * (1 + 0.04 * rng.standard_normal()),
                       "badpix": int(rng.poisson(12)), "max_flux": 8000.0, "num_overexp": 0, "bpm_count": 12}
            values["mean_level"] = values["mean_flux"] * 10.0
            qc1_rows.append({"set_id": set_id, "version": f"history-{index}", "night": night, "mjd_obs": mjd,
                             "setting_key": key, "cwlen": float(cwlen), "baffle_pos": float(baffle), "lamp": lamp,
                             "dit": 10.0, "ndit": 1, "n_raw": 1, "ny": 512, "window_starty": 1, "raw_type": "FLAT",
                             "detector": det, **values, "certified": not outlier, "verdict": verdict,
                             "master_file": f"history/{set_id}.fits",
                             "processed_at": now})
    with engine.begin() as conn:
        conn.execute(insert(sets), set_rows)
        conn.execute(insert(crires_flat), qc1_rows)
    return len(qc1_rows)
