"""A job function that notes which job ran, in order: light to import, as a worker's work-horse imports it per job."""

from __future__ import annotations

import os

from redis import Redis

from flatqc.queue import JobFunctions

ORDER_KEY = "test:order"


def record(version: str) -> None:
    Redis.from_url(os.environ["FLATQC_REDIS_URL"]).rpush(ORDER_KEY, version)


RECORDERS = JobFunctions(qc=f"{__name__}.record", pictures=f"{__name__}.record")
"""Both jobs recorded (handed to a :class:`flatqc.queue.JobQueue` in place of the worker's)."""
