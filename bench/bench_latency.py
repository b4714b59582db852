"""Latency of ``flatqc up`` from a set's last file landing to its QC1 rows and to its pictures, with 1 and with 2
workers, measured in one run.

    python -m bench.bench_latency [--nights 2] [--interval 2]

Synthetic nights (7 processable sets each) are delivered set by set, one set every ``--interval`` seconds (write to a
temporary name, then rename, as archives do), into a fresh tree watched by an in-process ``flatqc up`` (own Redis,
SQLite) on default settings (``FILE_SETTLE_S`` included). A set's arrival is the moment its last file is in place;
its QC1 time is ``processed_at`` of its rows; its pictures are ready when its cover sheet is written. Prints p50 /
p95 / max of both latencies and the throughput.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import PROCESSABLE, deliver_one_by_one, qc1_times, summary, tree_settings
from flatqc.db import connect
from flatqc.set_qc import output_dir
from flatqc.settings import Settings
from flatqc.up import Service
from qc.synth import NightManifest, write_night


def pictures_ready(settings: Settings, night: str, set_id: str) -> datetime | None:
    cover = output_dir(settings, night, set_id) / "cover.png"
    return datetime.fromtimestamp(cover.stat().st_mtime, UTC).replace(tzinfo=None) if cover.exists() else None


def run_once(staging: Path, manifests: list[NightManifest], workers: int, interval_s: float,
             work: Path) -> tuple[list[float], list[float], float]:
    """Deliver every processable set; return latencies to QC1 rows and to pictures [s], and sets per minute."""
    tree = work / f"tree-{workers}"
    shutil.copytree(staging / "reference", tree / "reference")
    settings = tree_settings(tree)
    service = Service(settings, workers)
    service.start()
    engine = connect(settings.db_url)
    pictures: dict[str, datetime] = {}
    try:
        time.sleep(2.0)  # workers up
        arrivals = deliver_one_by_one(staging, tree, manifests, interval_s)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = qc1_times(engine)
            for set_id, (night, _) in arrivals.items():
                pictures.setdefault(set_id, pictures_ready(settings, night, set_id))
                if pictures[set_id] is None:
                    del pictures[set_id]
            if len(done) >= len(arrivals) and len(pictures) >= len(arrivals):
                break
            time.sleep(0.2)
    finally:
        service.stop()
    to_rows = [(done[s] - at).total_seconds() for s, (_, at) in arrivals.items()]
    to_pictures = [(pictures[s] - at).total_seconds() for s, (_, at) in arrivals.items()]
    span = (max(done.values()) - min(at for _, at in arrivals.values())).total_seconds()
    return to_rows, to_pictures, 60.0 * len(arrivals) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--interval", type=float, default=2.0, help="Seconds between two sets.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        staging = work / "staging"
        manifests = [write_night(staging, seed=i, night=f"2010-05-{12 + i:02d}") for i in range(args.nights)]
        n_sets = sum(1 for m in manifests for s in m.sets if s.expected_verdict in PROCESSABLE)
        print(f"{n_sets} CRIRES sets delivered one every {args.interval:g} s "
              f"(offered load {60 / args.interval:.0f} sets/min), default settings")
        results = {}
        for workers in (1, 2):
            to_rows, to_pictures, throughput = run_once(staging, manifests, workers, args.interval, work)
            results[workers] = throughput
            print(f"  {workers} worker(s): last file -> QC1 rows  {summary(to_rows)}")
            print(f"               last file -> pictures  {summary(to_pictures)}   "
                  f"throughput {throughput:5.1f} sets/min")
        print(f"  throughput ratio 2 workers / 1 worker: {results[2] / results[1]:.2f}")


if __name__ == "__main__":
    main()
