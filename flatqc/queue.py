"""The rq queues: connections, queue names, deterministic job ids, the retry policy, and the checks the repair pass
makes on jobs. The jobs themselves, and the calls that queue them, are in :mod:`worker.jobs`.

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


def redis_connection(url: str) -> Redis:
    """A client for ``url`` (``redis://:password@host:port/db``) with short timeouts, so failures surface fast."""
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def job_queue(settings: Settings, connection: Redis) -> Queue:
    return Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)


def pictures_queue(settings: Settings, connection: Redis) -> Queue:
    """The queue of picture jobs: workers take from it only when no QC job waits."""
    return Queue(f"{settings.queue_name}-pictures", connection=connection, serializer=JSONSerializer)


def pictures_job_id(version: str) -> str:
    return f"pictures-{version[:40]}"


def job_id_for(version: str, attempt: int = 0) -> str:
    """``flatqc-<version prefix>`` (rq allows letters, digits, ``_`` and ``-``); ``-r<n>`` for forced reruns."""
    return f"flatqc-{version[:40]}" + (f"-r{attempt}" if attempt else "")


def retry_policy(settings: Settings) -> Retry | None:
    """rq's retry policy of both jobs: one retry per ``JOB_RETRY_INTERVALS`` entry, with that back-off."""
    intervals = settings.retry_intervals
    return Retry(max=len(intervals), interval=intervals) if intervals else None


def move_overdue_scheduled(queue: Queue, overdue_s: float) -> int:
    """Enqueue scheduled retries more than ``overdue_s`` past their time (the scheduler of the workers died, e.g.
    with a Redis restart); returns how many were moved. What rq's scheduler does, done by the repair pass."""
    registry = queue.scheduled_job_registry
    moved = 0
    for job_id in registry.get_jobs_to_schedule(int(datetime.now(UTC).timestamp() - overdue_s)):
        job = fetch_job(queue.connection, job_id)
        if job is not None:
            queue.enqueue_job(job)
            moved += 1
        registry.remove(job_id)
    return moved


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


STRANDED_KEY = "flatqc:stranded:{}"
"""Redis key remembering when a job was first seen stranded (value: epoch seconds)."""


def job_is_stranded(job: Job, waiting: set[str], stale_after_s: float) -> bool:
    """A job whose status says queued but that is in no queue (``waiting``: the ids in its queue): a worker popped it
    and died before its work-horse started it (Redis went away in between, or the worker was killed). rq's own
    clean-up finds such a job only when that worker's execution expires and another worker runs its maintenance
    (minutes), and never if the worker died before writing one. True once the job has been seen so for
    ``stale_after_s`` (the first sighting is kept in Redis), so a job on its way to a work-horse is left alone."""
    key = STRANDED_KEY.format(job.id)
    if job.id in waiting or job.get_status() != JobStatus.QUEUED:
        job.connection.delete(key)
        return False
    now = datetime.now(UTC).timestamp()
    job.connection.set(key, now, nx=True, ex=int(4 * stale_after_s) + 60)
    first = float(job.connection.get(key) or now)
    return now - first > stale_after_s


def redis_url_file(settings: Settings) -> Path:
    """Where ``flatqc up`` writes the URL of the Redis it started (mode 0600), for the other commands."""
    return settings.run_dir / "redis.url"


def resolve_redis_url(settings: Settings) -> str | None:
    """``FLATQC_REDIS_URL``, else the URL of the Redis a local ``flatqc up`` started, else None."""
    if settings.redis_url:
        return settings.redis_url
    path = redis_url_file(settings)
    return path.read_text().strip() if path.is_file() else None
