"""The rq queue: one JSON-serialised job per set version, with a deterministic id.

Payloads are plain JSON (the set version string), never pickles: nothing a file controls is ever unpickled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from flatqc.settings import Settings

JOB_FUNCTION = "worker.jobs.process_set"
"""Import path of the job function (resolved by name in the worker)."""


def redis_connection(url: str) -> Redis:
    """A client for ``url`` (``redis://:password@host:port/db``) with short timeouts, so failures surface fast."""
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def job_queue(settings: Settings, connection: Redis) -> Queue:
    return Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)


def job_id_for(version: str, attempt: int = 0) -> str:
    """``flatqc-<version prefix>`` (rq allows letters, digits, ``_`` and ``-``); ``-r<n>`` for forced reruns."""
    return f"flatqc-{version[:40]}" + (f"-r{attempt}" if attempt else "")


def enqueue_set(queue: Queue, version: str, settings: Settings, job_id: str) -> Job:
    """Queue the QC job of one set version (retries with the configured back-off)."""
    intervals = settings.retry_intervals
    return queue.enqueue(
        JOB_FUNCTION, version,
        job_id=job_id,
        job_timeout=settings.job_timeout_s,
        result_ttl=7 * 86400,
        failure_ttl=365 * 86400,
        retry=Retry(max=len(intervals), interval=intervals) if intervals else None,
        description=f"flat QC of set version {version[:16]}",
    )


def fetch_job(connection: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def job_is_stale(job: Job, stale_after_s: float) -> bool:
    """A started job whose worker stopped sending heartbeats (killed worker or work-horse)."""
    if job.get_status() != JobStatus.STARTED:
        return False
    beat = job.last_heartbeat or job.started_at
    if beat is None:
        return True
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return (datetime.now(UTC) - beat).total_seconds() > stale_after_s


def redis_url_file(settings: Settings) -> Path:
    """Where ``flatqc up`` writes the URL of the Redis it started (mode 0600), for the other commands."""
    return settings.run_dir / "redis.url"


def resolve_redis_url(settings: Settings) -> str | None:
    """``FLATQC_REDIS_URL``, else the URL of the Redis a local ``flatqc up`` started, else None."""
    if settings.redis_url:
        return settings.redis_url
    path = redis_url_file(settings)
    return path.read_text().strip() if path.is_file() else None
