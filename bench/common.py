"""What the per-set benchmarks share: the set they time, the timing, and the command line."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from flatqc.process import inspect_tree
from flatqc.settings import Settings
from qc.profiles import PROFILES
from qc.sets import FlatSet, group_sets
from qc.synth import write_night


def snr_pass_set(profile: str, work: Path) -> tuple[FlatSet, Settings]:
    """The passing 4-flat set (``snr_pass``, with reference) of a synthetic night of ``profile`` written under
    ``work``, and settings on that night with a SQLite database and QC output in ``work``."""
    night = work / "night"
    manifest = write_night(night, seed=7, profile=profile, sets=["snr_pass"])
    spec = next(s for s in manifest.sets if s.name == "snr_pass")
    settings = Settings(dfs_product=night / "dfs_product", dfs_raw=night / "dfs_raw",
                        qc_reference=night / "reference", qc_output=work / "qc",
                        db_url=f"sqlite:///{work / 'flatqc.db'}")
    folders = {(night / spec.master).parent, *((night / raw).parent for raw in spec.raws)}
    frames = inspect_tree(sorted(folders), settings, [])
    return next(s for s in group_sets(frames).complete if s.set_id == spec.set_id), settings


def first_and_best(fn: Callable[[], object], repeat: int,
                   setup: Callable[[], object] | None = None) -> tuple[float, float]:
    """Wall times [s] of the first call and the best of ``repeat`` later calls; ``setup`` runs untimed before
    each call."""
    times = []
    for _ in range(repeat + 1):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def main_per_profile(description: str, run_profile: Callable[[str, int], None]) -> None:
    """``--profile`` (default: both, CRIRES first) and ``--repeat``, then ``run_profile(name, repeat)``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", choices=sorted(PROFILES), help="only this profile (default: both)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name in [args.profile] if args.profile else ["crires", "crires+"]:
        run_profile(name, args.repeat)
