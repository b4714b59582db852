"""The rq queues: connections, queue names and their order, deterministic job ids, the retry policy, the
:class:`JobQueue` that puts jobs on them, the progress a work-horse reports, and the checks the repair pass makes on
jobs.

Three queues, taken by every worker in this order (rq listens to them in the order given; a worker reserved for
real time, ``flatqc worker --realtime-only``, listens to the first only):

1. ``<queue_name>``: QC jobs of sets as they arrive (the night's verdicts and alerts);
2. ``<queue_name>-pictures``: picture jobs of done sets (one per QC job, so it stays short);
3. ``<queue_name>-backfill``: QC jobs of ``flatqc backfill``, ``--force`` and the Reprocess button.

The job functions are named by dotted path in :class:`JobFunctions`, handed in by the entry points that compose a
process: nothing here knows which package holds them. Payloads are plain JSON (the set version string), never
pickles: nothing a file controls is ever unpickled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from flatqc.settings import Settings


class Lane(StrEnum):
    """Which QC queue a set version's jobs go to (kept in ``sets.lane``, so a job queued again keeps it)."""

    REALTIME = "realtime"
    """Sets as they arrive: taken first."""
    BACKFILL = "backfill"
    """Backfill and reprocessing: taken only when no real-time QC or picture job waits."""


def redis_connection(url: str) -> Redis:
    """A client for ``url`` (``redis://:password@host:port/db``) with short timeouts, so failures surface fast."""
    return Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30)


def job_queue(settings: Settings, connection: Redis, lane: Lane = Lane.REALTIME) -> Queue:
    """The QC queue of ``lane``: ``<queue_name>`` for real time, ``<queue_name>-backfill`` for backfill."""
    name = settings.queue_name if lane == Lane.REALTIME else f"{settings.queue_name}-{lane}"
    return Queue(name, connection=connection, serializer=JSONSerializer)


def pictures_queue(settings: Settings, connection: Redis) -> Queue:
    """The queue of picture jobs: workers take from it only when no real-time QC job waits."""
    return Queue(f"{settings.queue_name}-pictures", connection=connection, serializer=JSONSerializer)


def queues_in_order(settings: Settings, connection: Redis) -> list[Queue]:
    """Every queue, in the order workers take from them: real-time QC, pictures, backfill QC."""
    return [job_queue(settings, connection), pictures_queue(settings, connection),
            job_queue(settings, connection, Lane.BACKFILL)]


def pictures_job_id(version: str) -> str:
    return f"pictures-{version[:40]}"


def job_id_for(version: str, attempt: int = 0) -> str:
    """``flatqc-<version prefix>`` (rq allows letters, digits, ``_`` and ``-``); ``-r<n>`` for forced reruns."""
    return f"flatqc-{version[:40]}" + (f"-r{attempt}" if attempt else "")


def retry_policy(settings: Settings) -> Retry | None:
    """rq's retry policy of both jobs: one retry per ``JOB_RETRY_INTERVALS`` entry, with that back-off."""
    intervals = settings.retry_intervals
    return Retry(max=len(intervals), interval=intervals) if intervals else None


@dataclass(frozen=True)
class JobFunctions:
    """Dotted import paths of the job functions (rq stores the path in the job), given by the entry points."""

    qc: str
    """The QC job of a set version: ``f(version)``."""
    pictures: str
    """The picture job of a done set version: ``f(version)``."""


class JobQueue:
    """Puts a set version's jobs on the queue they belong to, with the retry policy, time-outs and the JSON
    serializer. Built by the entry point that composes a process and handed down (watcher, worker, dashboard)."""

    def __init__(self, settings: Settings, connection: Redis, functions: JobFunctions) -> None:
        self.settings = settings
        self.connection = connection
        self.functions = functions
        self.realtime, self.pictures, self.backfill = queues_in_order(settings, connection)

    def in_order(self, realtime_only: bool = False) -> list[Queue]:
        """The queues a worker listens to, in the order it takes jobs from them; ``realtime_only``: the real-time QC
        queue alone (a worker kept free for tonight's verdicts, not busy with a picture or backfill job when they
        come)."""
        return [self.realtime] if realtime_only else [self.realtime, self.pictures, self.backfill]

    def qc_queue(self, lane: Lane) -> Queue:
        return self.realtime if lane == Lane.REALTIME else self.backfill

    def enqueue_set(self, version: str, job_id: str, lane: Lane = Lane.REALTIME) -> Job:
        """Queue the QC job of one set version on the QC queue of ``lane``."""
        return self.qc_queue(lane).enqueue(
            self.functions.qc, version,
            job_id=job_id,
            job_timeout=self.settings.job_timeout_s,
            result_ttl=7 * 86400,
            failure_ttl=365 * 86400,
            retry=retry_policy(self.settings),
            description=f"flat QC of set version {version[:16]}" + (f" ({lane})" if lane != Lane.REALTIME else ""),
        )

    def enqueue_pictures(self, version: str) -> Job:
        """Queue the picture job of a done set version (one job id per version; one already waiting, scheduled or
        running is kept rather than queued twice)."""
        existing = fetch_job(self.connection, pictures_job_id(version))
        if existing is not None and existing.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED,
                                                              JobStatus.STARTED):
            return existing
        return self.pictures.enqueue(
            self.functions.pictures, version,
            job_id=pictures_job_id(version),
            job_timeout=self.settings.job_timeout_s,
            result_ttl=86400,
            failure_ttl=30 * 86400,
            retry=retry_policy(self.settings),
            description=f"pictures of set version {version[:16]}",
        )


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
    return (datetime.now(UTC) - _aware(beat)).total_seconds() > stale_after_s


def _aware(moment: datetime) -> datetime:
    """rq's naive datetimes are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


PROGRESS_KEY = "flatqc:progress:{}"
"""Redis key of a job's progress: when its work-horse last reported it was working (value: epoch seconds)."""


@contextmanager
def reporting_progress(connection: Redis, job_id: str, every_s: float) -> Iterator[None]:
    """Report, every ``every_s`` while the body runs, that this process works on ``job_id``: a daemon thread of the
    work-horse writes :data:`PROGRESS_KEY`. The worker's own heartbeat goes on whatever its horse does; this stops
    with the horse (SIGSTOP, a process frozen whole), which :func:`job_stalled_for` notices."""
    key = PROGRESS_KEY.format(job_id)
    done = threading.Event()

    def report() -> None:
        while True:
            try:
                connection.set(key, time.time(), ex=int(24 * 3600))
            except RedisError:  # Redis away: the heartbeat checks find that; the next report may get through
                pass
            if done.wait(every_s):
                return

    thread = threading.Thread(target=report, name=f"progress {job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        with suppress(RedisError):
            connection.delete(key)


def job_stalled_for(job: Job, stalled_after_s: float) -> float | None:
    """Seconds since the work-horse of started ``job`` last reported progress (or since it started) if more than
    ``stalled_after_s``, else None. A job that never reported (a plain ``rq worker``) is left to the heartbeat."""
    if job.get_status() != JobStatus.STARTED:
        return None
    reported = job.connection.get(PROGRESS_KEY.format(job.id))
    if reported is None:
        return None
    started = _aware(job.started_at).timestamp() if job.started_at else 0.0
    silent = time.time() - max(float(reported), started)
    return silent if silent > stalled_after_s else None


def end_work_horse(job: Job) -> None:
    """Ask the worker running ``job`` to kill its work-horse (rq's stop-job command, over Redis: any host); the
    worker marks the job stopped. A worker that is itself stopped gets it when it resumes, or never."""
    if job.worker_name:
        send_stop_job_command(job.connection, job.id, serializer=JSONSerializer)
    job.connection.delete(PROGRESS_KEY.format(job.id))


def discard_job(job: Job) -> None:
    """Delete ``job`` from Redis, also when its execution records are half gone (rq raises "Execution ... not
    found" for an execution listed whose hash was evicted or expired): the list is dropped and the delete done."""
    try:
        job.delete()
    except ValueError:
        job.connection.delete(job.execution_registry.key)
        job.delete()
    job.connection.delete(PROGRESS_KEY.format(job.id))


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
