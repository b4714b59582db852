"""What ``flatqc status`` (and the web pages) show: per-night counts from the ledger (backfill progress included),
what the repair pass ended or gave up on, QC1 rows not scored, queue figures from Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection, Engine

from flatqc.db import QC1_TABLES, files, job_events, sets, utcnow
from flatqc.ledger import current_versions
from flatqc.logs import one_line
from flatqc.queue import Lane, job_queue, queues_in_order
from flatqc.settings import Settings
from flatqc.supervision import restart_counts

SET_COLUMNS = ("done", "queued", "running", "failed", "incomplete", "waiting", "rejected")
WAITING_FILES = ("seen", "waiting")
"""File states of a current version that waits (for the rest of its set, or a product that lists it)."""
IN_QUEUE = ("queued", "running")
"""Set states of a set version whose job is not finished yet."""


@dataclass
class Backfill:
    """The sets of a night on the backfill queue (``flatqc backfill``, ``--force``, Reprocess)."""

    sets: int = 0
    done: int = 0
    """Finished (done, rejected or failed)."""
    waiting: int = 0
    """Queued or running."""

    def add(self, state: str, count: int = 1) -> None:
        """Count ``count`` backfill sets in ``state``."""
        self.sets += count
        if state in IN_QUEUE:
            self.waiting += count
        else:
            self.done += count

    def __str__(self) -> str:
        return f"backfill: {self.done} of {self.sets} sets done, {self.waiting} waiting"


@dataclass
class NightStatus:
    night: str
    sets: dict[str, int] = field(default_factory=dict)
    """Set versions per state (superseded pending rows are not counted)."""
    verdicts: dict[str, int] = field(default_factory=dict)
    files_rejected: int = 0
    files_ignored: int = 0
    files_waiting: int = 0
    """Current file versions waiting (a night may hold nothing else yet, e.g. a raw in the next night's folder)."""
    backfill: Backfill = field(default_factory=Backfill)


def nights(engine: Engine, limit: int | None = None) -> list[NightStatus]:
    """Per night, newest first: set states and verdicts, backfill progress, rejected, ignored and waiting files.

    With a ``limit``, only the newest ``limit`` nights are read (through the night indexes), so the time does not
    grow with the years of history."""
    by_night: dict[str, NightStatus] = {}
    with engine.connect() as conn:
        since = oldest_of_newest_nights(conn, limit) if limit else None
        set_counts = (select(sets.c.night, sets.c.state, sets.c.verdict, sets.c.lane, func.count())
                      .where(sets.c.state != "superseded")
                      .group_by(sets.c.night, sets.c.state, sets.c.verdict, sets.c.lane))
        if since is not None:
            set_counts = set_counts.where(or_(sets.c.night >= since, sets.c.night.is_(None)))
        for night, state, verdict, lane, count in conn.execute(set_counts):
            entry = by_night.setdefault(night or "unknown", NightStatus(night or "unknown"))
            entry.sets[state] = entry.sets.get(state, 0) + count
            if verdict:
                entry.verdicts[verdict] = entry.verdicts.get(verdict, 0) + count
            if lane == Lane.BACKFILL:
                entry.backfill.add(state, count)
        newest = current_versions(since=since)
        for night, state, count in conn.execute(
                select(files.c.night, files.c.state, func.count()).where(
                    files.c.id.in_(newest), files.c.state.in_(("rejected", "ignored", *WAITING_FILES)))
                .group_by(files.c.night, files.c.state)):
            entry = by_night.setdefault(night or "unknown", NightStatus(night or "unknown"))
            if state in WAITING_FILES:
                entry.files_waiting += count
            else:
                setattr(entry, f"files_{state}", count)
    ordered = sorted(by_night.values(), key=lambda n: n.night, reverse=True)
    return ordered[:limit] if limit else ordered


def oldest_of_newest_nights(conn: Connection, limit: int) -> str | None:
    """The oldest of the newest ``limit`` nights that have sets or files; None when there are no more than
    ``limit`` nights (then every night is among them)."""
    newest: set[str] = set()
    for table in (sets, files):
        newest |= set(conn.execute(select(table.c.night).where(table.c.night.is_not(None)).distinct()
                                   .order_by(table.c.night.desc()).limit(limit)).scalars())
    ordered = sorted(newest, reverse=True)
    return ordered[limit - 1] if len(ordered) >= limit else None


def older_nights_exist(engine: Engine, than: str) -> bool:
    """Whether a set or file of a night before ``than`` exists."""
    with engine.connect() as conn:
        return any(conn.execute(select(table.c.id).where(table.c.night < than).limit(1)).first() is not None
                   for table in (sets, files))


def problem_files(engine: Engine, night: str | None = None) -> list[Any]:
    """Current versions of rejected and ignored files (path, state, reason), optionally of one night."""
    return _current_files(engine, ("rejected", "ignored"), night)


def waiting_files(engine: Engine, night: str | None = None) -> list[Any]:
    """Current versions of waiting files (path, state, reason), optionally of one night."""
    return _current_files(engine, WAITING_FILES, night)


def _current_files(engine: Engine, states: tuple[str, ...], night: str | None) -> list[Any]:
    newest = current_versions(night or None)  # one night's: ranked within it (ix_files_night), not over every file
    query = (select(files.c.path, files.c.night, files.c.state, files.c.reason)
             .where(files.c.id.in_(newest), files.c.state.in_(states)).order_by(files.c.path))
    if night:
        query = query.where(files.c.night == night)
    with engine.connect() as conn:
        return list(conn.execute(query))


@dataclass
class QueueStatus:
    reachable: bool
    error: str | None = None
    depth: int = 0
    """Jobs waiting in all queues (real-time QC, pictures, backfill QC)."""
    waiting: dict[str, int] = field(default_factory=dict)
    """Jobs waiting per queue, in the order workers take from them."""
    running: int = 0
    failed: int = 0
    scheduled: int = 0
    workers: int = 0
    workers_busy: int = 0
    oldest_waiting_s: float | None = None
    """Age of the oldest real-time QC job waiting (backfill jobs wait by design)."""
    restarts: dict[str, int] = field(default_factory=dict)
    """Processes ``flatqc up`` started again, per role (``worker``)."""
    last_restart: str | None = None
    """When and why the newest restart happened."""


def queue_status(settings: Settings, redis: Redis | None) -> QueueStatus:
    """Jobs waiting (per queue), running, failed and scheduled (retries of QC and picture jobs), workers alive and
    busy, age of the oldest real-time QC job waiting, restarts by ``flatqc up``."""
    if redis is None:
        return QueueStatus(False, "no Redis URL (FLATQC_REDIS_URL unset and no local `flatqc up` running)")
    try:
        queue = job_queue(settings, redis)
        workers = Worker.all(queue=queue)
        oldest = None
        first = queue.get_job_ids(0, 0)
        if first:
            job = queue.fetch_job(first[0])
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at.replace(tzinfo=UTC) if job.enqueued_at.tzinfo is None else job.enqueued_at
                oldest = (datetime.now(UTC) - enqueued).total_seconds()
        restarts, last_restart = restart_counts(redis, settings)
        every = queues_in_order(settings, redis)
        waiting = {q.name: q.count for q in every}
        return QueueStatus(
            True, None, depth=sum(waiting.values()), waiting=waiting,
            running=sum(StartedJobRegistry(queue=q).count for q in every),
            failed=sum(FailedJobRegistry(queue=q).count for q in every),
            scheduled=sum(ScheduledJobRegistry(queue=q).count for q in every),
            workers=len(workers), workers_busy=sum(1 for w in workers if w.get_state() == "busy"),
            oldest_waiting_s=oldest, restarts=restarts, last_restart=last_restart,
        )
    except RedisError as exc:
        return QueueStatus(False, f"Redis unreachable: {one_line(exc)}")


RECENT_S = 86400.0
"""How far back :func:`repair_events` lists stalled jobs [s]."""


@dataclass
class RepairEvents:
    """What the repair pass ended or gave up on."""

    stalled: list[dict[str, Any]] = field(default_factory=list)
    """Jobs whose work-horse was ended for lack of progress in the last ``RECENT_S``, newest first:
    ``set_id``, ``version``, ``at``, ``detail``."""
    gave_up: list[dict[str, Any]] = field(default_factory=list)
    """Sets failed after too many automatic re-queues, waiting for a Retry: ``set_id``, ``version``, ``lane``,
    ``reason``, ``at``."""


def repair_events(engine: Engine, limit: int = 50) -> RepairEvents:
    """Stalled jobs of the last day and the sets the repair pass gave up on (failed, their newest event 'gave up')."""
    newest = select(job_events.c.version, func.max(job_events.c.id).label("id")).group_by(job_events.c.version)
    newest_event = newest.subquery()
    with engine.connect() as conn:
        stalled = conn.execute(
            select(sets.c.set_id, sets.c.version, job_events.c.at, job_events.c.detail)
            .join(sets, sets.c.version == job_events.c.version)
            .where(job_events.c.event == "stalled",
                   job_events.c.at >= utcnow() - timedelta(seconds=RECENT_S))
            .order_by(job_events.c.id.desc()).limit(limit))
        gave_up = conn.execute(
            select(sets.c.set_id, sets.c.version, sets.c.lane, sets.c.reason, job_events.c.at)
            .join(newest_event, newest_event.c.version == sets.c.version)
            .join(job_events, job_events.c.id == newest_event.c.id)
            .where(sets.c.state == "failed", job_events.c.event == "gave up")
            .order_by(job_events.c.id.desc()).limit(limit))
        return RepairEvents([dict(r._mapping) for r in stalled], [dict(r._mapping) for r in gave_up])


@dataclass
class Unscored:
    """QC1 rows stored without scores (a broken threshold file at the time, or written before scores existed), which
    ``flatqc rescore`` scores."""

    rows: int = 0
    first_night: str | None = None
    last_night: str | None = None


def unscored_rows(engine: Engine) -> Unscored:
    """How many QC1 rows have no ``thresholds_file`` (not scored), and the nights they span."""
    with engine.connect() as conn:
        found = [conn.execute(select(func.count(), func.min(table.c.night), func.max(table.c.night))
                              .where(table.c.thresholds_file.is_(None))).one() for table in QC1_TABLES.values()]
    nights = [night for _, *span in found for night in span if night]
    return Unscored(sum(count for count, *_ in found), min(nights, default=None), max(nights, default=None))
