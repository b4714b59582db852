"""Arrival -> QC1 row latency and throughput of ``flatqc up`` with 1 and with 2 workers, measured in one run.

    python -m bench.bench_latency [--nights 2] [--interval 1.5]

Synthetic nights (7 processable sets each) are delivered set by set, one set every ``--interval`` seconds, into a
fresh tree watched by an in-process ``flatqc up`` (own Redis, SQLite). A set's arrival is the moment its last file
is in place; its QC1 time is ``processed_at`` of its rows. Prints p50 / p95 / max latency and sets per minute.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from flatqc.db import connect, crires_flat
from flatqc.delivery import deliver_file
from flatqc.service import Service
from flatqc.settings import Settings
from qc.synth import NightManifest, write_night

PROCESSABLE = ("passed", "failed", "not_assessable")


def run_once(staging: Path, manifests: list[NightManifest], workers: int, interval_s: float,
             work: Path) -> tuple[list[float], float]:
    """Deliver every processable set; return per-set latencies [s] and the throughput [sets/min]."""
    tree = work / f"tree-{workers}"
    shutil.copytree(staging / "reference", tree / "reference")
    settings = Settings(dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
                        qc_output=tree / "qc", run_dir=tree / "run", db_url=f"sqlite:///{tree / 'flatqc.db'}",
                        redis_url=None, file_settle_s=0.5, rescan_interval_s=30)
    service = Service(settings, workers)
    service.start()
    engine = connect(settings.db_url)
    arrivals: dict[str, datetime] = {}
    try:
        time.sleep(1.0)
        for manifest in manifests:
            for entry in manifest.sets:
                if entry.expected_verdict not in PROCESSABLE:
                    continue
                for relative in (*entry.raws, entry.master, entry.bpm):
                    deliver_file(staging / relative, tree / relative, "rename")
                arrivals[entry.set_id] = datetime.now(UTC).replace(tzinfo=None)
                time.sleep(interval_s)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = dict(conn.execute(select(crires_flat.c.set_id, func.min(crires_flat.c.processed_at))
                                         .group_by(crires_flat.c.set_id)).all())
            if len(done) >= len(arrivals):
                break
            time.sleep(0.5)
    finally:
        service.stop()
    latencies = [(done[s] - arrivals[s]).total_seconds() for s in arrivals]
    span = (max(done.values()) - min(arrivals.values())).total_seconds()
    return latencies, 60.0 * len(arrivals) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.5, help="Seconds between two sets.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        manifests = [write_night(staging, seed=i, night=f"2010-05-{12 + i:02d}") for i in range(args.nights)]
        n_sets = sum(1 for m in manifests for s in m.sets if s.expected_verdict in PROCESSABLE)
        print(f"{n_sets} sets delivered one every {args.interval:g} s (offered load {60 / args.interval:.0f} sets/min)")
        results = {}
        for workers in (1, 2):
            latencies, throughput = run_once(staging, manifests, workers, args.interval, work)
            results[workers] = throughput
            q = statistics.quantiles(latencies, n=20, method="inclusive")
            print(f"  {workers} worker(s): latency p50 {statistics.median(latencies):5.1f} s  p95 {q[18]:5.1f} s  "
                  f"max {max(latencies):5.1f} s   throughput {throughput:5.1f} sets/min")
        print(f"  throughput ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}")


if __name__ == "__main__":
    main()
