"""Latency of tonight's sets while a big backfill runs: last member file lands -> QC1 rows, with a 1,000-set backfill
on its queue and without one, measured in one run.

    python -m bench.bench_backfill_latency [--backfill 1000] [--sets 18] [--interval 2]

Both runs: a ``flatqc up``-like service (2 worker processes and the watcher thread, as ``flatqc up`` starts them) on
an embedded Redis and SQLite, default settings. Tonight's sets (the processable full-frame sets of synthetic CRIRES
nights) are delivered one every ``--interval`` s, each file written under a temporary name and renamed. With
backfill, ``flatqc backfill`` first records ``--backfill`` small windowed sets (3 raws of 32 rows, 10 per night over
the nights before) and queues them on the backfill queue; the service then starts, works on them, and tonight's sets
arrive once the backfill is under way. The backfill sets are clones of one written set: the same pixels, the raws'
time stamps changed in place in every header (same length), so each has its own file names, set id and hashes, and
1,000 of them are written in seconds. Prints p50 / p95 / max of both, their ratio, and how far the backfill got.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.time import Time
from redis import Redis
from rq import Worker
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bench.common import deliver_one_by_one, qc1_times, summary, tree_settings
from flatqc.db import connect, sets
from flatqc.queue import Lane
from flatqc.redis_server import EmbeddedRedis
from flatqc.settings import settings_env
from flatqc.up import Service
from qc.synth import NightManifest, SetSpec, write_night, write_set

BACKFILL_SET = SetSpec("backfill", 2199.1, 15.0, "Halogen", 3, 6000.0, "passed", window=(32, 129))
"""The set every backfill set is a clone of: 3 raws, 32 rows of each detector (about 2 MB)."""
FIRST_BACKFILL_NIGHT = date(2009, 1, 1)
SETS_PER_NIGHT = 10
WORKERS = 2


def write_backfill(tree: Path, n_sets: int, scratch: Path) -> tuple[str, str]:
    """Write ``n_sets`` clones of :data:`BACKFILL_SET` into ``tree``; returns the first and the last night."""
    entry, _ = write_set(BACKFILL_SET, scratch, scratch, "template", np.random.default_rng(1),
                         Time("2008-12-31T10:00:00").mjd)
    raws = [Path(p) for p in entry.raws]
    stamps = [p.name.removeprefix("CRIRE.").removesuffix(".fits").encode() for p in raws]
    products = {"": Path(entry.master).read_bytes(), "_bpm": Path(entry.bpm).read_bytes()}
    raw_bytes = [p.read_bytes() for p in raws]
    nights = []
    for k in range(n_sets):
        night = FIRST_BACKFILL_NIGHT + timedelta(days=k // SETS_PER_NIGHT)
        first = datetime(night.year, night.month, night.day, 10) + timedelta(days=1, minutes=5 * (k % SETS_PER_NIGHT))
        new = [(first + timedelta(seconds=45 * i)).strftime("%Y-%m-%dT%H:%M:%S.000").encode() for i in range(len(raws))]

        def restamped(data: bytes, new: list[bytes] = new) -> bytes:
            for old, stamp in zip(stamps, new, strict=True):
                data = data.replace(old, stamp)  # same length: every header block stays in place
            return data

        raw_dir, product_dir = tree / "dfs_raw" / f"{night}", tree / "dfs_product" / "FLT_WIN" / f"{night}"
        raw_dir.mkdir(parents=True, exist_ok=True)
        product_dir.mkdir(parents=True, exist_ok=True)
        for stamp, data in zip(new, raw_bytes, strict=True):
            (raw_dir / f"CRIRE.{stamp.decode()}.fits").write_bytes(restamped(data))
        for suffix, data in products.items():
            (product_dir / f"crires_spec_flat_backfill{k:04d}{suffix}.fits").write_bytes(restamped(data))
        nights.append(f"{night}")
    return nights[0], nights[-1]


def backfill_progress(engine: Engine) -> tuple[int, int]:
    """Backfill sets finished, and all of them."""
    with engine.connect() as conn:
        counts = dict(conn.execute(select(sets.c.state, func.count()).where(sets.c.lane == Lane.BACKFILL)
                                   .group_by(sets.c.state)).all())
    return sum(n for state, n in counts.items() if state not in ("queued", "running")), sum(counts.values())


def run_once(work: Path, staging: Path, manifests: list[NightManifest], n_sets: int, interval_s: float,
             backfill: int) -> tuple[list[float], str]:
    """Tonight's sets through the service, after queueing ``backfill`` backfill sets; their latencies to QC1 rows
    [s] and a line on the backfill."""
    tree = work / f"tree-{backfill}"
    shutil.copytree(staging / "reference", tree / "reference")
    redis = EmbeddedRedis(work / f"redis-{backfill}")
    redis.start()
    settings = tree_settings(tree, redis.url)
    engine = connect(settings.db_url)
    note = "no backfill"
    service = Service(settings, WORKERS)
    try:
        if backfill:
            started = time.perf_counter()
            first, last = write_backfill(tree, backfill, work / "template")
            written = time.perf_counter() - started
            subprocess.run([sys.executable, "-m", "flatqc", "backfill", "--from", first, "--to", last],
                           env=os.environ | settings_env(settings), check=True, stdout=subprocess.DEVNULL)
            note = (f"{backfill} backfill sets written in {written:.0f} s, recorded and queued by `flatqc backfill` "
                    f"in {time.perf_counter() - started - written:.0f} s")
        service.start()
        service.watcher_caught_up.wait(120)
        connection = Redis.from_url(redis.url)
        while len(Worker.all(connection=connection)) < WORKERS:
            time.sleep(0.2)  # both workers listening (their start takes seconds on a busy machine)
        while backfill and backfill_progress(engine)[0] < 2 * WORKERS:
            time.sleep(0.2)  # the backfill is under way
        arrivals = deliver_one_by_one(staging, tree, manifests, interval_s, n_sets)
        deadline = time.monotonic() + 600
        while not arrivals.keys() <= (done := qc1_times(engine)).keys() and time.monotonic() < deadline:
            time.sleep(0.2)
        if backfill:
            finished, total = backfill_progress(engine)
            note += f"; when tonight's last set had its rows, {finished} of {total} backfill sets were done"
    finally:
        service.stop()
        redis.stop()
        engine.dispose()
    return [(done[s] - at).total_seconds() for s, (_, at) in arrivals.items()], note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backfill", type=int, default=1000, help="Backfill sets queued before tonight's.")
    parser.add_argument("--sets", type=int, default=18, help="Tonight's sets (7 per synthetic night).")
    parser.add_argument("--interval", type=float, default=2.0, help="Seconds between two of tonight's sets.")
    args = parser.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        manifests = [write_night(staging, seed=i, night=f"2010-05-{12 + i:02d}") for i in range(-(-args.sets // 7))]
        print(f"{args.sets} CRIRES sets of tonight delivered one every {args.interval:g} s, {WORKERS} workers, "
              "default settings; last file -> QC1 rows:")
        results = {}
        for backfill in (0, args.backfill):
            latencies, note = run_once(work, staging, manifests, args.sets, args.interval, backfill)
            results[backfill] = latencies
            print(f"  {'with' if backfill else 'without':7s} backfill: {summary(latencies)}   ({note})")
        ratio = [np.median(results[args.backfill]) / np.median(results[0]),
                 np.quantile(results[args.backfill], 0.95) / np.quantile(results[0], 0.95)]
        print(f"  with / without backfill: p50 {ratio[0]:.2f}x, p95 {ratio[1]:.2f}x")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
