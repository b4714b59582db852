"""The rq jobs of a set version, and the calls that queue them (by the function itself: rq stores its import path,
so a renamed job function breaks its callers' imports, not a worker at run time).

The QC job is thin: load members from the ledger, run ``qc``, finish (QC1 rows, set state and alert in one
transaction), notify, queue the picture job. The picture job draws flat1..flat6, the cover sheet and the trend
reports; nobody waits for it.

The only argument is the set version (a hex string); everything else comes from the ledger and the files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from redis.exceptions import RedisError
from rq import Queue, get_current_job
from rq.job import Job, JobStatus
from sqlalchemy.engine import Engine, Row

from flatqc import ledger, lifecycle
from flatqc.db import QC1_TABLES, connect
from flatqc.faults import checkpoint, describe, is_transient
from flatqc.files import sha256_file, shown
from flatqc.last_good import find_last_good, recorded_last_good
from flatqc.lifecycle import Members, Pictures, SetState
from flatqc.pipeline import analyse, compute_qc, draw_pictures, store_qc1
from flatqc.queue import fetch_job, pictures_job_id, pictures_queue, redis_connection, retry_policy
from flatqc.settings import Settings
from qc.certify import sentence
from qc.errors import FlatQCError, InconsistentSet
from qc.fitsio import inspect_file
from qc.profiles import PROFILES, profile_named
from qc.sets import FlatSet, group_sets
from worker.alerts import send_alert, send_cover
from worker.trends import update_trends

log = logging.getLogger(__name__)
T = TypeVar("T")


_context: tuple[Settings, Engine] | None = None


def prepare(settings: Settings | None = None) -> tuple[Settings, Engine]:
    """Make the settings (``settings``, else read from the environment) and the database engine the jobs of this
    process use. Called before rq forks its work-horses (see :func:`worker.run.run_worker`), so a job pays no
    start-up."""
    global _context
    release()
    settings = Settings() if settings is None else settings
    _context = (settings, connect(settings.db_url))
    return _context


def release() -> None:
    """Forget the settings and close the engine :func:`prepare` made (a test switching services)."""
    global _context
    if _context is not None:
        _context[1].dispose()
        _context = None


def context() -> tuple[Settings, Engine]:
    """The settings and engine of this process's jobs (prepared from the environment on first use)."""
    return _context or prepare()


def _fresh_connections_in_child() -> None:
    """A forked work-horse opens its own database connections instead of sharing its parent's sockets."""
    if _context is not None:
        _context[1].dispose(close=False)


os.register_at_fork(after_in_child=_fresh_connections_in_child)


class MemberChanged(RuntimeError):
    """A member does not hold the queued bytes, or changed while it was read (re-delivered in place). Retried with
    back-off, never a rejection: the same bytes back make the retry succeed; new bytes make a new set version."""


def member_stats(paths: list[str]) -> list[tuple[int, int]]:
    """``(size, mtime_ns)`` of each member: a cheap check that nothing was rewritten while the set was read."""
    try:
        return [(st.st_size, st.st_mtime_ns) for st in (Path(p).stat() for p in paths)]
    except FileNotFoundError as exc:
        raise MemberChanged(f"{Path(exc.filename).name} disappeared while the set was processed") from None


def load_set(members: Members, settings: Settings) -> FlatSet:
    """Re-read the members' headers and check they still hold the bytes that were queued."""
    for path, sha in zip(members.files, members.sha256, strict=True):
        try:
            held = sha256_file(path)
        except FileNotFoundError:
            held = None
        if held != sha:
            raise MemberChanged(f"{shown(path.name)} does not hold the queued bytes (being re-delivered?)")
    frames = [inspect_file(p, settings.window_starty_defaults()) for p in members.files]
    grouping = group_sets(frames)
    if len(grouping.complete) != 1:
        problems = [reason for _, reason, _ in grouping.rejected] or ["members no longer form one complete set"]
        raise InconsistentSet("; ".join(problems))
    return grouping.complete[0]


def read_members(members: Members, settings: Settings, compute: Callable[[FlatSet], T]) -> tuple[FlatSet, T]:
    """Load the set and ``compute`` on it; MemberChanged (not a rejection) if a member was rewritten meanwhile,
    since what was read may be half of one version and half of another."""
    paths = [str(p) for p in members.files]
    before = member_stats(paths)
    try:
        flatset = load_set(members, settings)
        computed = compute(flatset)
    except Exception as exc:  # whatever a half-written file caused, the rewrite is the reason
        if member_stats(paths) != before:
            raise MemberChanged("a member was rewritten while the set was read") from exc
        raise
    if member_stats(paths) != before:
        raise MemberChanged("a member was rewritten while the set was read")
    return flatset, computed


def process_set(version: str) -> dict[str, Any]:
    """The QC job of set ``version``: load -> qc -> finish (QC1 rows + state + alert, one transaction) -> notify.
    Pictures are a job of their own, queued after the verdict. Returns a small summary (stored by rq as JSON)."""
    settings, engine = context()
    job = get_current_job()
    job_id = job.id if job else None
    with engine.begin() as conn:
        row, started = lifecycle.start(conn, version, job_id)
    if not started:
        return {"set_id": row.set_id, "state": row.state, "skipped": f"already {row.state}"}
    checkpoint("job-started")
    members = Members.from_json(row.members)
    try:
        flatset, outcome = read_members(members, settings, lambda flatset: compute_qc(
            flatset, settings, members.hashes(), find_last_good(engine, flatset)))
    except FlatQCError as exc:
        with engine.begin() as conn:
            if lifecycle.supersede_if_overtaken(conn, row, job_id):
                return {"set_id": row.set_id, "state": "superseded"}
            lifecycle.reject(conn, row, job_id, str(exc))
        return {"set_id": row.set_id, "state": "rejected", "reason": str(exc)}
    except Exception as exc:
        _attempt_failed(engine, row, job, exc)
        raise
    result = outcome.result
    try:
        with engine.begin() as conn:  # rows + set state + alert: all or nothing
            if lifecycle.supersede_if_overtaken(conn, row, job_id):  # its files changed meanwhile: the newer counts
                return {"set_id": row.set_id, "state": "superseded"}
            store_qc1(conn, flatset, outcome, settings, version)
            lifecycle.finish(conn, row, job_id, result.certification.verdict, result.raw_type)
            alert_id = lifecycle.record_alert(conn, result, version)
            warning_id = lifecycle.record_warning(conn, result, version)
            checkpoint("job-before-commit")
    except Exception as exc:
        _attempt_failed(engine, row, job, exc)
        raise
    checkpoint("job-after-commit")
    for to_send in (alert_id, warning_id if settings.notify_warnings else None):
        if to_send is not None:
            send_alert(engine, to_send, settings.alert_urls, settings.alert_retries, public_url=settings.public_url)
    try:
        connection = job.connection if job else redis_connection(settings.redis_url) if settings.redis_url else None
        if connection is not None:
            enqueue_pictures(pictures_queue(settings, connection), version, settings)
    except RedisError as exc:  # the repair pass queues it when Redis is back
        log.warning("pictures of %s not queued: %s", row.set_id, describe(exc))
    return {"set_id": flatset.set_id, "state": "done", "verdict": result.certification.verdict,
            "reasons": [sentence(r) for r in result.certification.reasons]}


def _attempt_failed(engine: Engine, row: Row, job: Job | None, exc: Exception) -> None:
    """Record a failed attempt (retried by rq, or failed for good), unless a newer version overtook it. If even
    this cannot be written (database down), the repair pass finds the job's outcome in Redis later."""
    transient = isinstance(exc, MemberChanged) or is_transient(exc)
    error = describe(exc)
    try:
        with engine.begin() as conn:
            job_id = job.id if job else None
            if lifecycle.supersede_if_overtaken(conn, row, job_id):
                return
            if job is not None and job.retries_left:
                lifecycle.retry_later(conn, row, job_id, error, transient)
            else:
                lifecycle.fail(conn, row, job_id, error, transient)
    except Exception as cannot:  # noqa: BLE001 - the original error is what rq must see
        log.warning("set %s: attempt failed (%s) and could not be recorded (%s)", row.set_id, error,
                    describe(cannot))
    if transient and not isinstance(exc, MemberChanged):  # MemberChanged: the worker logs its one line
        log.warning("set %s: %s (will be retried)", row.set_id, error)


def draw_set_pictures(version: str) -> dict[str, Any]:
    """The picture job of a done set version: flat1..flat6, the cover sheet and the trend reports of its setting.
    Idempotent; never touches the QC1 rows."""
    settings, engine = context()
    with engine.connect() as conn:
        row = ledger.set_row(conn, version)
    if row is None or row.state != SetState.DONE or row.pictures == Pictures.DONE:
        return {"version": version, "skipped": "not a done set without pictures"}
    job = get_current_job()
    try:
        flatset, plots = read_members(Members.from_json(row.members), settings, lambda flatset: draw_pictures(
            analyse(flatset, settings, True, recorded_last_good(engine, flatset)), settings))
        profile = profile_named(flatset.profile)
        configs = {p.name: (QC1_TABLES[p.table], settings.qc_config(p.name)) for p in PROFILES.values()}
        update_trends(engine, configs, settings.qc_output / "trends", profile.name, flatset.setting_key)
    except Exception as exc:
        if not (job and job.retries_left):
            with engine.begin() as conn:
                lifecycle.pictures_failed(conn, version, describe(exc))
        raise
    with engine.begin() as conn:
        lifecycle.pictures_drawn(conn, version)
    try:  # the alert went out before the cover existed: it follows on channels that take attachments
        send_cover(engine, row.set_id, plots["cover"], settings.alert_urls, settings.public_url)
    except Exception as exc:  # noqa: BLE001 - the pictures are drawn; a notification problem must not undo that
        log.warning("cover of set %s not sent: %s", row.set_id, describe(exc))
    return {"set_id": row.set_id, "pictures": sorted(plots)}


def enqueue_set(queue: Queue, version: str, settings: Settings, job_id: str) -> Job:
    """Queue the QC job of one set version (retries with the configured back-off)."""
    return queue.enqueue(
        process_set, version,
        job_id=job_id,
        job_timeout=settings.job_timeout_s,
        result_ttl=7 * 86400,
        failure_ttl=365 * 86400,
        retry=retry_policy(settings),
        description=f"flat QC of set version {version[:16]}",
    )


def enqueue_pictures(queue: Queue, version: str, settings: Settings) -> Job:
    """Queue the picture job of a done set version (one job id per version; one already waiting, scheduled or
    running is kept rather than queued twice)."""
    existing = fetch_job(queue.connection, pictures_job_id(version))
    if existing is not None and existing.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED):
        return existing
    return queue.enqueue(
        draw_set_pictures, version,
        job_id=pictures_job_id(version),
        job_timeout=settings.job_timeout_s,
        result_ttl=86400,
        failure_ttl=30 * 86400,
        retry=retry_policy(settings),
        description=f"pictures of set version {version[:16]}",
    )
