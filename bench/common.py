"""What the benchmarks share: the set the per-set ones time, the timing, and the command line; the delivery of sets
one by one and their latencies for the service ones; a PostgreSQL schema of their own."""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine

from flatqc.batch import inspect_tree
from flatqc.db import crires_flat
from flatqc.settings import Settings
from flatqc.synthetic_delivery import deliver_file
from qc.profiles import PROFILES
from qc.sets import FlatSet, group_sets
from qc.synth import NightManifest, write_night

PROCESSABLE = ("passed", "failed", "not_assessable")
"""Expected verdicts of the synthetic sets that end with QC1 rows."""


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


def deliver_one_by_one(staging: Path, tree: Path, manifests: list[NightManifest], interval_s: float,
                       limit: int | None = None) -> dict[str, tuple[str, datetime]]:
    """Deliver the processable sets of ``manifests`` (the first ``limit``) from ``staging`` into ``tree``, each file
    written under a temporary name and renamed, one set every ``interval_s``; returns each set's night and arrival
    (its last file in place, naive UTC like the ledger's times)."""
    sets = [(m.night, s) for m in manifests for s in m.sets if s.expected_verdict in PROCESSABLE][:limit]
    arrivals = {}
    for night, entry in sets:
        for relative in (*entry.raws, entry.master, entry.bpm):
            deliver_file(staging / relative, tree / relative, "rename")
        arrivals[entry.set_id] = (night, datetime.now(UTC).replace(tzinfo=None))
        time.sleep(interval_s)
    return arrivals


def qc1_times(engine: Engine) -> dict[str, datetime]:
    """When each set's QC1 rows were written."""
    with engine.connect() as conn:
        return dict(conn.execute(select(crires_flat.c.set_id, func.min(crires_flat.c.processed_at))
                                 .group_by(crires_flat.c.set_id)).all())


def summary(latencies: list[float]) -> str:
    """p50, p95 and max of ``latencies`` [s]."""
    q = statistics.quantiles(latencies, n=20, method="inclusive")
    return f"p50 {statistics.median(latencies):5.2f} s  p95 {q[18]:5.2f} s  max {max(latencies):5.2f} s"


def tree_settings(tree: Path, redis_url: str | None = None) -> Settings:
    """Default settings of a service watching ``tree`` (its database, QC output and run folder inside it)."""
    return Settings(dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
                    qc_output=tree / "qc", run_dir=tree / "run", db_url=f"sqlite:///{tree / 'flatqc.db'}",
                    redis_url=redis_url)


@contextmanager
def pg_schema(base_url: str) -> Iterator[str]:
    """URL of a fresh schema of the PostgreSQL database ``base_url`` (its search_path), dropped at the end."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base_url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
