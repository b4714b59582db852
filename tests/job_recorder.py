"""Job functions that note which job ran, in order (one of them then holds its worker until the test releases it):
light to import, as a worker's work-horse imports them per job."""

from __future__ import annotations

from redis import Redis
from rq import get_current_job

from flatqc.queue import JobFunctions

ORDER_KEY = "test:order"
RELEASE_KEY = "test:release"


def _connection() -> Redis:
    job = get_current_job()
    assert job is not None, "called outside an rq job"
    return job.connection


def record(version: str) -> None:
    _connection().rpush(ORDER_KEY, version)


def record_and_hold(version: str) -> None:
    """Record, then keep the worker busy until the test pushes to :data:`RELEASE_KEY` (a long backfill job)."""
    connection = _connection()
    connection.rpush(ORDER_KEY, version)
    connection.blpop([RELEASE_KEY], timeout=120)


RECORDERS = JobFunctions(qc=f"{__name__}.record", pictures=f"{__name__}.record")
"""Both jobs recorded (handed to a :class:`flatqc.queue.JobQueue` in place of the worker's)."""
HOLDERS = JobFunctions(qc=f"{__name__}.record_and_hold", pictures=f"{__name__}.record")
"""QC jobs that hold their worker until released."""
