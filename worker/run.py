"""``flatqc worker``: a standard rq worker on the service's queue, JSON serializer, scheduler for retries."""

from __future__ import annotations

import logging

from rq import Worker
from rq.serializers import JSONSerializer

from flatqc.db import connect
from flatqc.queue import job_queue, redis_connection
from flatqc.settings import Settings


def run_worker(settings: Settings, redis_url: str, burst: bool = False, name: str | None = None) -> None:
    """Work jobs until stopped (SIGTERM: finish the current job, then exit). Creates the schema first."""
    connect(settings.db_url).dispose()
    connection = redis_connection(redis_url)
    worker = Worker(
        [job_queue(settings, connection)], connection=connection, serializer=JSONSerializer, name=name,
        job_monitoring_interval=settings.job_heartbeat_s,
    )
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    worker.work(burst=burst, with_scheduler=True, logging_level=level if isinstance(level, str) else "INFO")
