"""The rq jobs of a set version. The entry point that starts a worker names them by dotted path (queued through
:class:`flatqc.queue.JobQueue`) and hands the queue and the notifier to :func:`prepare`.

The QC job is thin: load members from the ledger, run ``qc``, finish (QC1 rows, set state and alert in one
transaction), notify, queue the picture job. The picture job draws flat1..flat5, the cover sheet and the trend
reports; nobody waits for it.

The only argument is the set version (a hex string); everything else comes from the ledger and the files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from redis.exceptions import RedisError
from rq import get_current_job
from rq.job import Job
from sqlalchemy.engine import Engine, Row

from flatqc import ledger
from flatqc.db import QC1_TABLES, connect
from flatqc.faults import checkpoint, describe, is_transient
from flatqc.files import sha256_file, shown
from flatqc.lifecycle import StaleAttempt, TransitionRefused
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.lifecycle.sets import Members, Pictures, SetState
from flatqc.notify import Notifier
from flatqc.pipeline import analyse, compute_qc, draw_pictures, store_qc1
from flatqc.queue import JobQueue
from flatqc.settings import Settings
from qc.certify import sentence
from qc.errors import FlatQCError, InconsistentSet
from qc.fitsio import inspect_file
from qc.profiles import PROFILES, profile_named
from qc.sets import FlatSet, group_sets
from worker.trends import update_trends

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What the jobs of this process use."""

    settings: Settings
    engine: Engine
    queue: JobQueue | None
    """Where the QC job queues the picture job; None in a process no entry point composed (a plain ``rq worker``):
    the repair pass queues the pictures then."""
    notifier: Notifier


_context: Context | None = None


def prepare(settings: Settings | None = None, queue: JobQueue | None = None,
            notifier: Notifier | None = None) -> Context:
    """Make the context of this process's jobs: ``settings`` (else read from the environment), a database engine,
    the ``queue`` and the ``notifier`` the entry point built (else one from the settings). Called before rq forks
    its work-horses (see :func:`worker.run.run_worker`), so a job pays no start-up."""
    global _context
    release()
    settings = Settings() if settings is None else settings
    _context = Context(settings, connect(settings.db_url), queue,
                       Notifier.from_settings(settings) if notifier is None else notifier)
    return _context


def release() -> None:
    """Forget the context and close the engine :func:`prepare` made (a test switching services)."""
    global _context
    if _context is not None:
        _context.engine.dispose()
        _context = None


def context() -> Context:
    """The context of this process's jobs (prepared from the environment on first use)."""
    return _context or prepare()


def fresh_connections_in_child() -> None:
    """A forked work-horse opens its own database connections instead of sharing its parent's sockets (registered
    with :func:`os.register_at_fork` by the worker's start)."""
    if _context is not None:
        _context.engine.dispose(close=False)


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
    Pictures are a job of their own, queued after the verdict. Returns a small summary (stored by rq as JSON).

    An attempt whose set is finished already, or that lost the set meanwhile (queued again by the repair pass or
    Reprocess: its token is stale), commits nothing and says so in one log line."""
    job = get_current_job()
    try:
        return _attempt(context(), version, job)
    except TransitionRefused as refused:
        stale = isinstance(refused, StaleAttempt)
        log.log(logging.WARNING if stale else logging.INFO, "%s; %s", refused,
                "nothing of this attempt was committed" if stale else "nothing to do")
        return {"version": version, "state": refused.current, "skipped": str(refused)}


def _attempt(ctx: Context, version: str, job: Job | None) -> dict[str, Any]:
    """One attempt at the set: it holds the set through the token of the row :func:`set_lifecycle.start` gives."""
    settings, engine = ctx.settings, ctx.engine
    job_id = job.id if job else None
    with engine.begin() as conn:
        row = set_lifecycle.start(conn, version, job_id)
    checkpoint("job-started")
    members = Members.from_json(row.members)
    try:
        flatset, outcome = read_members(members, settings,
                                        lambda flatset: compute_qc(flatset, settings, members.hashes()))
    except FlatQCError as exc:
        with engine.begin() as conn:
            if set_lifecycle.supersede_if_overtaken(conn, row, job_id):
                return {"set_id": row.set_id, "state": "superseded"}
            set_lifecycle.reject(conn, row, job_id, str(exc))
        return {"set_id": row.set_id, "state": "rejected", "reason": str(exc)}
    except Exception as exc:
        _attempt_failed(engine, row, job, exc)
        raise
    result = outcome.result
    try:
        with engine.begin() as conn:  # set state + rows + alert: all or nothing, and only while the set is ours
            if set_lifecycle.supersede_if_overtaken(conn, row, job_id):  # its files changed meanwhile: the newer counts
                return {"set_id": row.set_id, "state": "superseded"}
            set_lifecycle.finish(conn, row, job_id, result.certification.verdict, result.raw_type)
            store_qc1(conn, flatset, outcome, settings, version)
            alert_id = alert_lifecycle.record_alert(conn, result, version)
            warning_id = alert_lifecycle.record_warning(conn, result, version)
            checkpoint("job-before-commit")
    except StaleAttempt:
        raise
    except Exception as exc:  # an alert changed by another job meanwhile (a refusal) too: retried
        _attempt_failed(engine, row, job, exc)
        raise
    checkpoint("job-after-commit")
    for to_send in (alert_id, warning_id if settings.notify_warnings else None):
        if to_send is not None:
            ctx.notifier.send(engine, to_send)
    try:
        if ctx.queue is not None:
            ctx.queue.enqueue_pictures(version)
    except RedisError as exc:  # the repair pass queues it when Redis is back
        log.warning("pictures of %s not queued: %s", row.set_id, describe(exc))
    return {"set_id": flatset.set_id, "state": "done", "verdict": result.certification.verdict,
            "reasons": [sentence(r) for r in result.certification.reasons]}


def _attempt_failed(engine: Engine, row: Row, job: Job | None, exc: Exception) -> None:
    """Record a failed attempt (retried by rq, or failed for good), unless a newer version overtook it. If even
    this cannot be written (database down), the repair pass finds the job's outcome in Redis later. An attempt
    that lost its set meanwhile raises TransitionRefused instead: its failure is not the set's."""
    transient = isinstance(exc, MemberChanged) or is_transient(exc)
    error = describe(exc)
    try:
        with engine.begin() as conn:
            job_id = job.id if job else None
            if set_lifecycle.supersede_if_overtaken(conn, row, job_id):
                return
            if job is not None and job.retries_left:
                set_lifecycle.retry_later(conn, row, job_id, error, transient)
            else:
                set_lifecycle.fail(conn, row, job_id, error, transient)
    except TransitionRefused:
        raise
    except Exception as cannot:  # noqa: BLE001 - the original error is what rq must see
        log.warning("set %s: attempt failed (%s) and could not be recorded (%s)", row.set_id, error,
                    describe(cannot))
    if transient and not isinstance(exc, MemberChanged):  # MemberChanged: the worker logs its one line
        log.warning("set %s: %s (will be retried)", row.set_id, error)


def draw_set_pictures(version: str) -> dict[str, Any]:
    """The picture job of a done set version: flat1..flat5, the cover sheet and the trend reports of its setting.
    Idempotent; never touches the QC1 rows. If the set was processed again while they were drawn, they are drawn
    again for the attempt that holds it now (not marked done for the one that lost it)."""
    ctx = context()
    settings, engine = ctx.settings, ctx.engine
    with engine.connect() as conn:
        row = ledger.set_row(conn, version)
    if row is None or row.state != SetState.DONE or row.pictures == Pictures.DONE:
        return {"version": version, "skipped": "not a done set without pictures"}
    job = get_current_job()
    try:
        flatset, plots = read_members(Members.from_json(row.members), settings,
                                      lambda flatset: draw_pictures(analyse(flatset, settings, True), settings))
        profile = profile_named(flatset.profile)
        configs = {p.name: (QC1_TABLES[p.table], settings.qc_config(p.name)) for p in PROFILES.values()}
        update_trends(engine, configs, settings.qc_output / "trends", profile.name, flatset.setting_key)
    except Exception as exc:
        if not (job and job.retries_left):
            _pictures_failed(engine, row, exc)
        raise
    try:
        with engine.begin() as conn:
            set_lifecycle.pictures_drawn(conn, row)
    except TransitionRefused as refused:
        log.info("%s; pictures drawn again if the set is done", refused)
        return draw_set_pictures(version)
    try:  # the alert went out before the cover existed: it follows on channels that take attachments
        ctx.notifier.send_cover(engine, row.set_id, plots["cover"])
    except Exception as exc:  # noqa: BLE001 - the pictures are drawn; a notification problem must not undo that
        log.warning("cover of set %s not sent: %s", row.set_id, describe(exc))
    return {"set_id": row.set_id, "pictures": sorted(plots)}


def _pictures_failed(engine: Engine, row: Row, exc: Exception) -> None:
    """Record that the picture job of ``row`` gave up, unless the set was processed again meanwhile."""
    try:
        with engine.begin() as conn:
            set_lifecycle.pictures_failed(conn, row, describe(exc))
    except TransitionRefused as refused:
        log.info("%s; the failure of an earlier attempt's pictures is not recorded", refused)

