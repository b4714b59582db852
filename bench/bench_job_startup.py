"""Per-job start-up cost of a worker: ``flatqc worker`` (job modules and engine loaded before rq forks a work-horse)
against a plain ``rq worker`` on the same queue (each work-horse imports numpy, astropy, matplotlib and the job
module itself), measured in one run.

    python -m bench.bench_job_startup [--jobs 20]

Each job is the real QC job function on a set version that is done already, so it does the start-up and one
ledger read and returns: what remains is the cost every job pays before it computes anything. Prints the median
job duration (rq's started_at -> ended_at) and the wall time per job of each worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rq.job import Job

from flatqc.compose import service_queue
from flatqc.db import connect
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Members, SetKeys, SetState
from flatqc.queue import redis_connection
from flatqc.redis_server import EmbeddedRedis
from flatqc.settings import Settings


def run_jobs(label: str, command: list[str], settings: Settings, redis_url: str, version: str, n_jobs: int,
             env: dict[str, str]) -> tuple[float, float]:
    """Queue ``n_jobs`` QC jobs of the done ``version``, run ``command`` (a burst worker) until the queue is empty;
    returns the median job duration and the wall time per job [s]."""
    queue = service_queue(settings, redis_connection(redis_url))
    ids = [queue.enqueue_set(version, f"bench-{label}-{i}").id for i in range(n_jobs)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    jobs = Job.fetch_many(ids, connection=queue.connection, serializer=queue.realtime.serializer)
    durations = [(j.ended_at - j.started_at).total_seconds() for j in jobs if j and j.ended_at and j.started_at]
    if len(durations) != n_jobs:
        raise RuntimeError(f"{label}: {n_jobs - len(durations)} jobs did not finish")
    return statistics.median(durations), wall / n_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-job-startup-") as tmp:
        work = Path(tmp)
        redis = EmbeddedRedis(work / "redis")
        redis.start()
        try:
            settings = Settings(db_url=f"sqlite:///{work / 'flatqc.db'}", run_dir=work / "run", qc_output=work / "qc",
                                redis_url=redis.url, queue_name="bench")
            members = Members(("m.fits", "b.fits", "r.fits"), ("a" * 64, "b" * 64, "c" * 64))
            with connect(settings.db_url).begin() as conn:
                set_lifecycle.record_processed(conn, SetKeys("bench", "2010-05-12"), members, SetState.DONE, None,
                                               "passed", "FLAT")
            env = os.environ | {"FLATQC_DB_URL": settings.db_url, "FLATQC_REDIS_URL": redis.url,
                                "FLATQC_QUEUE_NAME": "bench", "FLATQC_RUN_DIR": str(work / "run")}
            flatqc_cmd = [sys.executable, "-m", "flatqc", "worker", "--burst"]
            rq_cmd = [str(Path(sys.executable).parent / "rq"), "worker", "--burst", "--url", redis.url,
                      "--serializer", "rq.serializers.JSONSerializer", "bench"]
            print(f"{args.jobs} QC jobs of a set that is done already (start-up + one ledger read each)")
            results = {}
            for name, label, command in (("flatqc worker", "flatqc", flatqc_cmd), ("plain rq worker", "rq", rq_cmd)):
                results[name] = run_jobs(label, command, settings, redis.url, members.version, args.jobs, env)
                job, wall = results[name]
                print(f"  {name:16s} median job {job * 1000:7.1f} ms   wall per job {wall * 1000:7.1f} ms")
            ratio = results["plain rq worker"][0] / results["flatqc worker"][0]
            print(f"  per-job start-up saved: {ratio:.0f}x shorter jobs")
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
