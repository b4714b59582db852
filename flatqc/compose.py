"""Composition of the processes (entry-point layer, with the commands, ``flatqc up`` and the demo that use it): the
job functions the queues run, named here and nowhere below, and the queueing object built with them."""

from __future__ import annotations

from redis import Redis

from flatqc.queue import JobFunctions, JobQueue
from flatqc.settings import Settings

WORKER_JOBS = JobFunctions(qc="worker.jobs.run_set_qc", pictures="worker.jobs.draw_set_pictures")
"""The jobs of :mod:`worker.jobs`, by dotted path (importing them here would load numpy and astropy for
``flatqc status``)."""


def service_queue(settings: Settings, connection: Redis) -> JobQueue:
    """The service's queues on ``connection``, running :data:`WORKER_JOBS`."""
    return JobQueue(settings, connection, WORKER_JOBS)
