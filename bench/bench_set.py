"""Time one 4-flat set end to end (read, stats, plots, cover) against the naive version, in the same run.

    python bench/bench_set.py [--profile crires] [--repeat 3]

Writes the passing 4-flat set of a synthetic night (and its reference) into a temporary folder and runs both
implementations on the same files, after one warm-up each (so both see a warm page cache). Prints the median times,
the ratio naive / production, the raw file-read time as a floor, and the peak RSS of each implementation processing
the set once in a fresh process (interpreter and imports included; CRIRES+ budget 1.5 GB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
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


def _report_peak_rss(sender: Connection, fn: Callable[..., object], args: tuple) -> None:
    fn(*args)
    sender.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_rss_mb(fn: Callable[..., object], *args: object) -> float:
    """Peak resident set size [MB] of a fresh (spawned) process running ``fn(*args)`` once."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.get_context("spawn").Process(target=_report_peak_rss, args=(sender, fn, args))
    process.start()
    peak = receiver.recv()
    process.join()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="crires", choices=["crires", "crires+"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    profile = profile_named(args.profile)

    with tempfile.TemporaryDirectory(prefix="bench-set-") as tmp:
        work = Path(tmp)
        manifest = write_night(work / "night", seed=7, profile=profile.name, sets=["snr_pass"])
        spec = next(s for s in manifest.sets if s.name == "snr_pass")
        settings = Settings(dfs_product=work / "night/dfs_product", dfs_raw=work / "night/dfs_raw",
                            qc_reference=work / "night/reference", qc_output=work / "qc")
        night = work / "night"
        folders = {(night / spec.master).parent, *((night / raw).parent for raw in spec.raws)}
        frames = inspect_tree(sorted(folders), settings, [])
        flatset = next(s for s in group_sets(frames).complete if s.set_id == spec.set_id)
        files = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
        size_mb = sum(p.stat().st_size for p in files) / 1e6

        reference = find_reference(settings.qc_reference, profile, settings.qc_config(profile.name),
                                   flatset.setting_key)
        naive_args = ([r.path for r in flatset.raws], flatset.master.path, flatset.bpm.path,
                      reference.master, reference.bpm, work / "naive", profile.n_detectors)
        rss_prod = peak_rss_mb(compute_set, flatset, settings)
        rss_naive = peak_rss_mb(naive_set, *naive_args)
        t_read = timed(lambda: read_all(files), args.repeat)
        t_prod = timed(lambda: compute_set(flatset, settings), args.repeat)
        t_naive = timed(lambda: naive_set(*naive_args), args.repeat)

    print(f"profile {profile.name}: one set of {flatset.n_raw} raw flats + master + BPM, {size_mb:.0f} MB of FITS")
    print(f"  raw file read (floor)      {t_read:7.2f} s")
    print(f"  production (compute_set)   {t_prod:7.2f} s   = {t_prod / t_read:5.1f} x read time")
    print(f"  naive (astropy + full-res) {t_naive:7.2f} s   = {t_naive / t_read:5.1f} x read time")
    print(f"  ratio naive / production   {t_naive / t_prod:7.1f}")
    print(f"  peak RSS, production       {rss_prod:7.0f} MB (one set in a fresh process)")
    print(f"  peak RSS, naive            {rss_naive:7.0f} MB (one set in a fresh process)")


if __name__ == "__main__":
    main()
