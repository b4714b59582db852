"""A flood: 10,000 small files arriving at once, and how fast the watcher gets them into the ledger.

    python -m bench.bench_flood [--files 10000] [--idle 30]

Writes the files (raw flats of the CRIRES profile with 16 x 16 chips, small valid FITS files that are not flat
products, ~10 % junk) into a fresh tree, runs ``flatqc watch`` as a subprocess against SQLite and an embedded
Redis, and prints the time until every file is a row of the ledger, files per second, the watcher's peak RSS and
its idle CPU over ``--idle`` seconds after the burst (% of one core, from ``/proc/<pid>/stat``). Prints, never
asserts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from sqlalchemy import func, select

from flatqc.db import connect, files
from flatqc.redis_server import EmbeddedRedis
from flatqc.settings import Settings, settings_env
from qc.profiles import CRIRES
from qc.synth_fits import primary_header

NIGHT = "2010-05-12"
STAMP = "2010-05-12T00:00:00.000"
"""Placeholder of the per-file ARCFILE / DATE-OBS (same length as every replacement, so the header stays put)."""


def _template(cards: dict[str, object], chip: int = 16) -> bytes:
    """A small multi-extension FITS file (primary header, four ``CHIPn.INT1`` images) as bytes."""
    hdus: list = [fits.PrimaryHDU(header=primary_header(cards))]
    rng = np.random.default_rng(0)
    for det in CRIRES.detectors:
        hdus.append(fits.ImageHDU(rng.normal(1000, 30, (chip, chip)).astype(np.float32),
                                  name=CRIRES.chip_extname(det)))
    with tempfile.TemporaryFile() as fh:
        fits.HDUList(hdus).writeto(fh)
        fh.seek(0)
        return fh.read()


def raw_flat_bytes() -> bytes:
    """A raw flat of the synthetic CRIRES profile (classified ``raw``; 16 x 16 chips, never processed)."""
    return _template({
        "INSTRUME": "CRIRES", "ARCFILE": f"CRIRE.{STAMP}.fits", "DATE-OBS": STAMP, "MJD-OBS": 55328.5,
        "ESO DET DIT": 2.0, "ESO DET NDIT": 1, "ESO DET WINDOW NY": 512, "ESO DET WINDOW STARTY": 1,
        "ESO INS WLEN CWLEN": 1504.0, "ESO INS BAFFLE POS": 1.0, "ESO INS LAMP1 NAME": "Halogen",
        "ESO DPR CATG": "CALIB", "ESO DPR TYPE": "FLAT", "ESO DPR TECH": "SPECTRUM"})


def other_product_bytes() -> bytes:
    """A valid FITS product that is not a flat (ignored: ``PRO CATG = 'CALPRO_DARK'``)."""
    return _template({"INSTRUME": "CRIRES", "DATE-OBS": STAMP, "MJD-OBS": 55328.5,
                      "ESO PRO CATG": "CALPRO_DARK", "ESO PRO REC1 RAW1 NAME": f"CRIRE.{STAMP}.fits"})


def write_flood(tree: Path, n: int = 10_000, junk_every: int = 10) -> list[Path]:
    """Write ``n`` small files under ``tree``'s watched folders: every ``junk_every``-th one junk (not FITS), the
    rest alternately raw flats (``dfs_raw/<night>/``) and non-flat products (``dfs_product/FLAT/<night>/``).
    Every file's bytes differ (a unique ARCFILE / DATE-OBS). Returns the paths, in writing order."""
    raw, other = raw_flat_bytes(), other_product_bytes()
    raw_dir, product_dir = tree / "dfs_raw" / NIGHT, tree / "dfs_product" / "FLAT" / NIGHT
    raw_dir.mkdir(parents=True, exist_ok=True)
    product_dir.mkdir(parents=True, exist_ok=True)
    placeholder = STAMP.encode()
    written = []
    for i in range(n):
        stamp = f"2010-05-12T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i // 86400:03d}".encode()
        if i % junk_every == junk_every - 1:
            path, data = product_dir / f"junk_{i:05d}.fits", b"not a FITS file " + stamp
        elif i % 2:
            path, data = raw_dir / f"CRIRE.{stamp.decode()}.fits", raw.replace(placeholder, stamp)
        else:
            path, data = product_dir / f"other_{i:05d}.fits", other.replace(placeholder, stamp)
        path.write_bytes(data)
        written.append(path)
    return written


def ledger_count(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return conn.execute(select(func.count(func.distinct(files.c.path)))).scalar() or 0


def proc_figures(pid: int) -> tuple[float, int]:
    """``(CPU seconds used so far, peak RSS [kB])`` of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    peak = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmHWM:"))
    return cpu, peak


def run(n: int, idle_s: float, work: Path) -> None:
    tree = work / "tree"
    redis = EmbeddedRedis(work / "redis")
    redis.start()
    settings = Settings(dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
                        qc_output=tree / "qc", run_dir=tree / "run", db_url=f"sqlite:///{work / 'flatqc.db'}",
                        redis_url=redis.url)
    engine = connect(settings.db_url)
    env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": redis.url}
    log = (work / "watch.log").open("wb")
    watcher = subprocess.Popen([sys.executable, "-m", "flatqc", "watch"], env=env, stdout=log, stderr=log)
    try:
        while not (tree / "dfs_raw").is_dir():  # the watcher creates its folders when it is ready
            time.sleep(0.1)
        started = time.monotonic()
        write_flood(tree, n)
        written = time.monotonic() - started
        count = 0
        while count < n:
            if watcher.poll() is not None:
                raise SystemExit(f"the watcher died ({watcher.returncode}); see {work / 'watch.log'}")
            time.sleep(0.2)
            count = ledger_count(engine)
        elapsed = time.monotonic() - started
        cpu_before, _ = proc_figures(watcher.pid)
        time.sleep(idle_s)
        cpu_after, peak_kb = proc_figures(watcher.pid)
        print(f"{n} files written in {written:.1f} s; all in the ledger {elapsed:.1f} s after the first was "
              f"written ({n / elapsed:.0f} files/s)")
        print(f"watcher peak RSS {peak_kb / 1024:.0f} MB; idle CPU over {idle_s:.0f} s after the burst "
              f"{100 * (cpu_after - cpu_before) / idle_s:.1f} % of one core")
    finally:
        watcher.terminate()
        watcher.wait(30)
        log.close()
        engine.dispose()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured after the burst")
    parser.add_argument("--work", type=Path, default=None, help="keep the tree, database and watcher log here")
    args = parser.parse_args()
    if args.work:
        args.work.mkdir(parents=True, exist_ok=False)
        run(args.files, args.idle, args.work)
        return
    with tempfile.TemporaryDirectory() as work:
        run(args.files, args.idle, Path(work))


if __name__ == "__main__":
    main()
