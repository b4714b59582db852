"""Time one 4-flat set end to end (read, stats, plots, cover) against the naive version, in the same run.

    python bench/bench_set.py [--profile crires] [--repeat 3]

Writes a synthetic night into a temporary folder, picks its passing 4-flat set and runs both implementations on
the same files, alternating, after one warm-up each (so both see a warm page cache). Prints the median times,
the ratio naive / production, the raw file-read time as a floor, and the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from astropy.io import fits

from bench.naive import naive_set
from flatqc.pipeline import compute_set
from flatqc.process import inspect_tree
from flatqc.settings import Settings
from qc.profiles import profile_named
from qc.reference import find_reference
from qc.sets import group_sets
from qc.synth import write_night


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time [s] of ``repeat`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_all(paths: list[Path]) -> None:
    """Only read every data byte once (the floor any implementation pays)."""
    for path in paths:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                _ = hdu.data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="crires", choices=["crires", "crires+"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profile = profile_named(args.profile)

    with tempfile.TemporaryDirectory(prefix="bench-set-") as tmp:
        work = Path(tmp)
        manifest = write_night(work / "night", seed=7, profile=profile.name)
        spec = next(s for s in manifest.sets if s.name == "snr_pass")
        settings = Settings(dfs_product=work / "night/dfs_product", dfs_raw=work / "night/dfs_raw",
                            qc_reference=work / "night/reference", qc_output=work / "qc")
        night = work / "night"
        folders = {(night / spec.master).parent, *((night / raw).parent for raw in spec.raws)}
        frames = inspect_tree(sorted(folders), settings, [])
        flatset = next(s for s in group_sets(frames).complete if s.set_id == spec.set_id)
        files = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
        size_mb = sum(p.stat().st_size for p in files) / 1e6

        t_read = timed(lambda: read_all(files), args.repeat)
        t_prod = timed(lambda: compute_set(flatset, settings), args.repeat)
        reference = find_reference(settings.qc_reference, profile, settings.qc_config(profile.name),
                                   flatset.setting_key)
        t_naive = timed(lambda: naive_set([r.path for r in flatset.raws], flatset.master.path, flatset.bpm.path,
                                          reference.master, reference.bpm, work / "naive", profile.n_detectors),
                        args.repeat)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"profile {profile.name}: one set of {flatset.n_raw} raw flats + master + BPM, {size_mb:.0f} MB of FITS")
    print(f"  raw file read (floor)      {t_read:7.2f} s")
    print(f"  production (compute_set)   {t_prod:7.2f} s   = {t_prod / t_read:5.1f} x read time")
    print(f"  naive (astropy + full-res) {t_naive:7.2f} s   = {t_naive / t_read:5.1f} x read time")
    print(f"  ratio naive / production   {t_naive / t_prod:7.1f}")
    print(f"  peak RSS of this process   {peak_mb:7.0f} MB (naive included)")


if __name__ == "__main__":
    main()
