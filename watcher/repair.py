"""Repair: make the queue agree with the ledger, and end the waits that outages leave behind.

- waiting sets older than ``incomplete_timeout_s`` become incomplete;
- a queued or running set whose job is missing from Redis (restarted empty), whose worker stopped sending
  heartbeats (killed), or whose job was taken from the queue by a worker that died before starting it (stranded)
  is queued again; a job rq gave up on (e.g. killed by its timeout) fails its set;
- scheduled retries overdue by ``overdue_retry_s`` (the scheduler died with Redis) are moved to the queue;
- a set failed by a transient cause (database, disk) is queued again ``transient_retry_s`` after it failed;
- a done set whose pictures are missing or failed gets its picture job again.

A set's job is queued again on the QC queue of its lane (``sets.lane``): a backfill job stays behind the night's.
"""

from __future__ import annotations

import logging

from rq.job import Job
from sqlalchemy import select
from sqlalchemy.engine import Engine, Row

from flatqc import ledger
from flatqc.db import sets
from flatqc.faults import checkpoint
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Pictures, SetState
from flatqc.queue import (
    JobQueue,
    Lane,
    fetch_job,
    job_is_stale,
    job_is_stranded,
    move_overdue_scheduled,
    pictures_job_id,
)
from flatqc.settings import Settings

log = logging.getLogger(__name__)


def time_out_incomplete(engine: Engine, settings: Settings) -> int:
    with engine.begin() as conn:
        return set_lifecycle.mark_incomplete(conn, settings.incomplete_timeout_s)


def repair_queue(engine: Engine, settings: Settings, queue: JobQueue) -> list[str]:
    """One repair pass over Redis and the ledger; returns what it did, a line each."""
    done: list[str] = []
    redis = queue.connection
    for scheduled in queue.in_order():
        moved = move_overdue_scheduled(scheduled, settings.overdue_retry_s)
        if moved:
            done.append(f"{moved} overdue scheduled retries of {scheduled.name} moved to the queue")
    with engine.connect() as conn:
        active = ledger.sets_in_states(conn, [SetState.QUEUED, SetState.RUNNING])
        failed = list(conn.execute(select(sets).where(sets.c.state == SetState.FAILED, sets.c.transient.is_(True))))
        unpictured = list(conn.execute(select(sets).where(sets.c.state == SetState.DONE,
                                                          sets.c.pictures.in_((Pictures.PENDING, Pictures.FAILED)))))
    waiting = set(queue.realtime.get_job_ids()) | set(queue.backfill.get_job_ids())
    waiting_pictures = set(queue.pictures.get_job_ids())
    for row in active:
        job = fetch_job(redis, row.job_id)
        if job is None:
            done += _requeue(engine, queue, row, "job missing from Redis (restart?)")
        elif job_is_stale(job, settings.stale_job_s):
            job.delete()
            done += _requeue(engine, queue, row, "worker stopped sending heartbeats (killed?)")
        elif job_is_stranded(job, waiting, settings.stale_job_s):
            job.delete()
            done += _requeue(engine, queue, row, "taken from the queue by a worker that died before starting it")
        elif job.is_failed and _fail(engine, row, job):
            done.append(f"set {row.set_id}: job failed in rq")
    for row in failed:
        if ledger.older_than(row.finished_at, settings.transient_retry_s):
            done += _requeue(engine, queue, row, f"retry after a transient failure ({row.reason})", new_job=True)
    for row in unpictured:
        job = fetch_job(redis, pictures_job_id(row.version))
        if (job is None or job_is_stranded(job, waiting_pictures, settings.stale_job_s)
                or (job.is_failed and ledger.older_than(row.finished_at, settings.transient_retry_s))):
            if job is not None:
                job.delete()
            try:
                with engine.begin() as conn:
                    set_lifecycle.pictures_requeued(conn, row)
            except TransitionRefused as refused:  # processed again since it was read: the next pass looks again
                log.info("repair: %s", refused)
                continue
            queue.enqueue_pictures(row.version)
            done.append(f"set {row.set_id}: picture job queued again")
    checkpoint("repair-done")
    return done


def _requeue(engine: Engine, queue: JobQueue, row: Row, why: str, new_job: bool = False) -> list[str]:
    """Queue ``row``'s set version again, on the QC queue of its lane."""
    try:
        with engine.begin() as conn:
            job_id = set_lifecycle.requeue(conn, row, why, new_job=new_job)
    except TransitionRefused as refused:  # it moved since it was read (or cannot be queued): nothing to repair
        log.info("repair: %s", refused)
        return []
    queue.enqueue_set(row.version, job_id, Lane(row.lane))
    return [f"set {row.set_id} queued again: {why}" + (f" ({row.lane} queue)" if row.lane != Lane.REALTIME else "")]


def _fail(engine: Engine, row: Row, job: Job) -> bool:
    """rq gave up on a job whose set the job could not mark itself: it was killed (timeout, out of memory) or the
    database was down when it ended. Only the timeout is taken as final; the rest is retried once it passes.
    Returns whether the set was failed (not if it moved since it was read)."""
    result = job.latest_result()
    lines = (result.exc_string or "").strip().splitlines() if result else []
    error = next((line for line in reversed(lines) if line and not line.startswith("(Background")), "job failed")
    try:
        with engine.begin() as conn:
            set_lifecycle.fail(conn, row, job.id, error, transient="JobTimeoutException" not in error)
    except TransitionRefused as refused:
        log.info("repair: %s", refused)
        return False
    return True
