"""Time one 4-flat set of each profile (CRIRES, CRIRES+) stage by stage against the naive version, in one run.

    python -m bench.bench_set [--profile crires|crires+] [--repeat 3]

For each profile (both unless ``--profile`` picks one) the passing 4-flat set of a synthetic night and its reference
are written into a temporary folder, then timed on the same files, each stage after one warm-up (warm page cache),
best of ``--repeat`` (the machine is shared):

- I/O floor: ``np.fromfile`` of every file the statistics read (raws, master, BPM, reference master and BPM);
- one median per file: the floor, plus each file's pixels in native byte order and one exact median of its finite
  values (:func:`qc.median.median`): what a single one of the exact medians the QC1 definitions take over every raw
  (mean_level), the master, the S/N map and the reference ratio costs, for scale;
- statistics: ``qc.analysis.analyse_set(..., with_views=False)`` (reading in physical units, validation, QC1);
- QC path: what the worker's QC job does between taking the set and committing (``worker.jobs.run_set_qc``):
  ``compute_qc``, then QC1 rows + set state + alert in one transaction of a SQLite database;
- pictures: ``draw_pictures`` (flat1..flat5 and the cover) of a result analysed with views;
- naive: ``bench.naive.naive_set`` (astropy defaults, float64, full-resolution plots).

Prints the times and the ratios statistics / floor, naive / QC path and naive / (QC path + pictures), and the peak
RSS of the production path (``compute_set``: read, QC, pictures) and of the naive version, each processing the set
once in a fresh process (interpreter and imports included; CRIRES+ budget 1.5 GB). Nothing is asserted.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bench.common import first_and_best, main_per_profile, snr_pass_set
from bench.naive import naive_set
from flatqc.db import connect, sets
from flatqc.files import sha256_file
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Members, SetKeys
from flatqc.set_qc import analyse, compute_qc, compute_set, draw_pictures, store_qc1
from flatqc.settings import Settings
from qc.analysis import analyse_set
from qc.median import median
from qc.profiles import profile_named
from qc.reference import Reference, find_reference
from qc.sets import FlatSet


def read_floor(paths: list[Path]) -> None:
    """Only read every byte once into memory (the floor any implementation pays)."""
    for path in paths:
        np.fromfile(path, dtype=np.uint8)


def read_and_one_median(paths: list[Path], dtypes: list[np.dtype]) -> None:
    """Read every file, view its bytes as its pixel type (big-endian ``dtypes``) in native order and take one exact
    median of the finite values."""
    for path, dtype in zip(paths, dtypes, strict=True):
        raw = np.fromfile(path, dtype=np.uint8)
        pixels = raw[:raw.size // dtype.itemsize * dtype.itemsize].view(dtype).astype(dtype.newbyteorder("="))
        median(pixels, np.isfinite(pixels))


def pixel_dtype(path: Path) -> np.dtype:
    """Big-endian dtype of the first extension's pixels (BITPIX)."""
    return np.dtype({8: ">u1", 16: ">i2", 32: ">i4", -32: ">f4", -64: ">f8"}[fits.getval(path, "BITPIX", ext=1)])


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


@dataclass
class Bench:
    """One profile's synthetic set, its settings and a SQLite ledger holding the set as the watcher would."""

    flatset: FlatSet
    settings: Settings
    reference: Reference
    engine: Engine
    version: str
    work: Path

    def files(self) -> list[Path]:
        """Every file the statistics read."""
        refs = [self.reference.master, self.reference.bpm] if self.reference.available else []
        return [self.flatset.master.path, self.flatset.bpm.path, *(r.path for r in self.flatset.raws),
                *(p for p in refs if p is not None)]

    def statistics(self) -> None:
        profile = profile_named(self.flatset.profile)
        analyse_set(self.flatset, profile, self.settings.qc_config(profile.name), self.settings.qc_reference,
                    with_views=False)

    def take(self) -> None:
        """Put the set version back in the hands of a job (``running``), as ``set_lifecycle.start`` does."""
        with self.engine.begin() as conn:
            row = conn.execute(select(sets).where(sets.c.version == self.version)).one()
            set_lifecycle.requeue(conn, row, "bench")
            set_lifecycle.start(conn, self.version, "bench")

    def qc_path(self) -> None:
        """The worker's QC job from a running set version to its commit (no notification, no picture job)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(sets).where(sets.c.version == self.version)).one()
        members = Members.from_json(row.members)
        outcome = compute_qc(self.flatset, self.settings, members.hashes())
        with self.engine.begin() as conn:
            store_qc1(conn, self.flatset, outcome, self.settings, self.version)
            set_lifecycle.finish(conn, row, "bench", outcome.result.certification.verdict, outcome.result.raw_type)
            alert_lifecycle.record_alert(conn, outcome.result, self.version)


def prepare(profile_name: str, work: Path) -> Bench:
    """Write the ``snr_pass`` set (4 flats, with reference) of a synthetic night and claim it in a new ledger."""
    flatset, settings = snr_pass_set(profile_named(profile_name).name, work)
    return claim(flatset, settings, work)


def claim(flatset: FlatSet, settings: Settings, work: Path) -> Bench:
    """Claim ``flatset`` in the database of ``settings`` (its schema made if need be) as the watcher would, and
    hand it to a job (``running``)."""
    profile = profile_named(flatset.profile)
    reference = find_reference(settings.qc_reference, profile, settings.qc_config(profile.name),
                               flatset.setting_key)
    paths = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
    members = Members(tuple(str(p) for p in paths), tuple(sha256_file(p) for p in paths))
    engine = connect(settings.db_url)
    keys = SetKeys(flatset.set_id, flatset.night, flatset.profile, flatset.setting_key, flatset.n_raw)
    with engine.begin() as conn:
        set_lifecycle.claim_complete(conn, keys, members, [], None)
        set_lifecycle.start(conn, members.version, "bench")
    return Bench(flatset, settings, reference, engine, members.version, work)


def run_profile(profile_name: str, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-set-") as tmp:
        bench = prepare(profile_name, Path(tmp))
        flatset, settings, reference = bench.flatset, bench.settings, bench.reference
        files = bench.files()
        size_mb = sum(p.stat().st_size for p in files) / 1e6
        naive_args = ([r.path for r in flatset.raws], flatset.master.path, flatset.bpm.path,
                      reference.master, reference.bpm, bench.work / "naive", profile_named(profile_name).n_detectors)
        rss_prod = peak_rss_mb(compute_set, flatset, settings)
        rss_naive = peak_rss_mb(naive_set, *naive_args)
        t_floor = first_and_best(lambda: read_floor(files), repeat)[1]
        dtypes = [pixel_dtype(path) for path in files]
        t_median = first_and_best(lambda: read_and_one_median(files, dtypes), repeat)[1]
        t_stats = first_and_best(bench.statistics, repeat)[1]
        t_qc = first_and_best(bench.qc_path, repeat, setup=bench.take)[1]
        with_views = analyse(flatset, settings, with_views=True)
        t_pictures = first_and_best(lambda: draw_pictures(with_views, settings), repeat)[1]
        t_naive = first_and_best(lambda: naive_set(*naive_args), repeat)[1]
        bench.engine.dispose()

    print(f"profile {profile_name}: one set of {flatset.n_raw} raw flats + master + BPM + reference, "
          f"{size_mb:.0f} MB of FITS (best of {repeat}, warm page cache)")
    print(f"  I/O floor (np.fromfile)        {t_floor:7.3f} s")
    print(f"  read + one median per file     {t_median:7.3f} s   = {t_median / t_floor:5.1f} x floor")
    print(f"  statistics (analyse_set)       {t_stats:7.3f} s   = {t_stats / t_floor:5.1f} x floor"
          f" = {t_stats / t_median:4.1f} x read + one median per file")
    print(f"  QC path (stats+rows+alert)     {t_qc:7.3f} s")
    print(f"  pictures (draw_pictures)       {t_pictures:7.3f} s")
    print(f"  naive (astropy + full-res)     {t_naive:7.3f} s")
    print(f"  naive / QC path                {t_naive / t_qc:7.1f}")
    print(f"  naive / (QC path + pictures)   {t_naive / (t_qc + t_pictures):7.1f}")
    print(f"  peak RSS, production           {rss_prod:7.0f} MB (compute_set, one set in a fresh process)")
    print(f"  peak RSS, naive                {rss_naive:7.0f} MB (one set in a fresh process)")


if __name__ == "__main__":
    main_per_profile(__doc__.splitlines()[0], run_profile)
