"""Repair: make the queue agree with the ledger, and end the waits that outages leave behind.

- waiting sets older than ``incomplete_timeout_s`` become incomplete;
- a queued or running set whose job is missing from Redis (restarted empty), whose worker stopped sending
  heartbeats (killed), whose job was taken from the queue by a worker that died before starting it (stranded), or
  whose work-horse reported no progress for ``stalled_job_s`` (stopped, hung: the horse is ended first) is queued
  again; a job rq gave up on (e.g. killed by its timeout) fails its set;
- these re-queues are counted per set version: past ``max_auto_requeues`` the set is failed ("gave up after N
  automatic re-queues") and waits for a person's Retry;
- scheduled retries overdue by ``overdue_retry_s`` (the scheduler died with Redis) are moved to the queue;
- a set failed by a transient cause (database, disk) is queued again ``transient_retry_s`` after it failed;
- a done set whose pictures are missing or failed gets its picture job again.

Each item is repaired on its own: one that raises (a job half evicted from Redis) is logged and skipped, the others
are repaired in the same pass. A set's job is queued again on the QC queue of its lane (``sets.lane``): a backfill
job stays behind the night's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from rq.job import Job
from sqlalchemy import select
from sqlalchemy.engine import Engine, Row

from flatqc import ledger
from flatqc.db import sets
from flatqc.faults import checkpoint, describe
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Pictures, SetState
from flatqc.logs import RateLimitedLog
from flatqc.queue import (
    JobQueue,
    Lane,
    discard_job,
    end_work_horse,
    fetch_job,
    job_is_stale,
    job_is_stranded,
    job_stalled_for,
    move_overdue_scheduled,
    pictures_job_id,
)
from flatqc.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
ERROR_LOG_S = 300.0
"""The error of one item (set, job, queue) is logged at most this often [s]."""
errors = RateLimitedLog(log, ERROR_LOG_S)
"""Rate limit of the items' error lines (one watcher per process)."""


def time_out_incomplete(engine: Engine, settings: Settings) -> int:
    with engine.begin() as conn:
        return set_lifecycle.mark_incomplete(conn, settings.incomplete_timeout_s)


def repair_queue(engine: Engine, settings: Settings, queue: JobQueue) -> list[str]:
    """One repair pass over Redis and the ledger; returns what it did, a line each. Each queue, set and job is
    repaired on its own: one that raises is logged (a line per set, rate-limited) and the pass goes on."""
    done: list[str] = []
    for scheduled in queue.in_order():
        moved = _isolated(f"scheduled retries of {scheduled.name}",
                          partial(move_overdue_scheduled, scheduled, settings.overdue_retry_s))
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
        done += _isolated(f"set {row.set_id}", partial(_repair_job, engine, settings, queue, row, waiting)) or []
    for row in failed:
        if ledger.older_than(row.finished_at, settings.transient_retry_s):
            why = f"retry after a transient failure ({row.reason})"
            done += _isolated(f"set {row.set_id}", partial(_requeue, engine, settings, queue, row, why, True)) or []
    for row in unpictured:
        done += _isolated(f"pictures of set {row.set_id}",
                          partial(_repair_pictures, engine, settings, queue, row, waiting_pictures)) or []
    checkpoint("repair-done")
    return done


def _isolated(item: str, repair: Callable[[], T]) -> T | None:
    """Run the repair of one ``item``; an error is logged (once per item and ``ERROR_LOG_S``) and None returned."""
    try:
        return repair()
    except Exception as exc:  # noqa: BLE001 - one bad item never stops the pass; it is tried again next pass
        errors.log(item, logging.ERROR, "repair: %s skipped this pass: %s", item, describe(exc))
        return None


def _repair_job(engine: Engine, settings: Settings, queue: JobQueue, row: Row, waiting: set[str]) -> list[str]:
    """A queued or running set whose job is missing, stale, stranded, stalled or failed in rq."""
    job = fetch_job(queue.connection, row.job_id)
    if job is None:
        return _requeue(engine, settings, queue, row, "job missing from Redis (restart?)")
    if job_is_stale(job, settings.stale_job_s):
        discard_job(job)
        return _requeue(engine, settings, queue, row, "worker stopped sending heartbeats (killed?)")
    if job_is_stranded(job, waiting, settings.stale_job_s):
        discard_job(job)
        return _requeue(engine, settings, queue, row, "taken from the queue by a worker that died before starting it")
    silent = job_stalled_for(job, settings.stalled_job_s)
    if silent is not None:  # its worker lives on and gets the job as stopped: the set goes on under a new job id
        end_work_horse(job)
        return _requeue(engine, settings, queue, row, f"stalled: no progress for {silent:.0f} s; work-horse ended",
                        new_job=True, event="stalled")
    if job.is_failed and _fail(engine, row, job):
        return [f"set {row.set_id}: job failed in rq"]
    return []


def _repair_pictures(engine: Engine, settings: Settings, queue: JobQueue, row: Row,
                     waiting_pictures: set[str]) -> list[str]:
    """A done set whose picture job is missing, stranded, or failed a while ago."""
    job = fetch_job(queue.connection, pictures_job_id(row.version))
    if not (job is None or job_is_stranded(job, waiting_pictures, settings.stale_job_s)
            or (job.is_failed and ledger.older_than(row.finished_at, settings.transient_retry_s))):
        return []
    if job is not None:
        discard_job(job)
    try:
        with engine.begin() as conn:
            set_lifecycle.pictures_requeued(conn, row)
    except TransitionRefused as refused:  # processed again since it was read: the next pass looks again
        log.info("repair: %s", refused)
        return []
    queue.enqueue_pictures(row.version)
    return [f"set {row.set_id}: picture job queued again"]


def _requeue(engine: Engine, settings: Settings, queue: JobQueue, row: Row, why: str, new_job: bool = False,
             event: str = "requeued") -> list[str]:
    """Queue ``row``'s set version again, on the QC queue of its lane, unless it was re-queued automatically
    ``max_auto_requeues`` times already: then it is failed, saying so."""
    try:
        with engine.begin() as conn:
            job_id = set_lifecycle.requeue_automatically(conn, row, why, settings.max_auto_requeues, new_job, event)
    except TransitionRefused as refused:  # it moved since it was read (or cannot be queued): nothing to repair
        log.info("repair: %s", refused)
        return []
    if job_id is None:
        return [f"set {row.set_id} failed: gave up after {row.auto_requeues} automatic re-queues ({why})"]
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
