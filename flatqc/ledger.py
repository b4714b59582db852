"""Ledger operations on the ``files``, ``sets`` and ``job_events`` tables, shared by watcher, worker and commands.

The ledger, not the event stream, is the truth: a file version is (path, sha256); a set version is the hash of its
members' hashes. Claiming a set version is an INSERT on a unique column, so two watchers or a restart cannot queue
it twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from flatqc.db import files, job_events, sets, utcnow


def pending_version(set_id: str) -> str:
    """Version key of the row of a set that is not complete yet (one per set_id, updated in place)."""
    return f"pending-{set_id}"


def _newest_first() -> tuple:
    """Order of a path's versions, the current one first: the bytes that arrived last (ties: the later row)."""
    return func.coalesce(files.c.current_since, files.c.first_seen).desc(), files.c.id.desc()


def latest_version(conn: Connection, path: str) -> Row | None:
    """The current ledger row of ``path`` (its bytes are what the file held when last taken)."""
    return conn.execute(select(files).where(files.c.path == path).order_by(*_newest_first()).limit(1)).first()


def current_versions(night: str | None = None) -> Select:
    """A query of the ids of every path's current version, optionally of one night."""
    rank = func.row_number().over(partition_by=files.c.path, order_by=_newest_first()).label("rank")
    ranked = select(files.c.id, rank)
    if night is not None:
        ranked = ranked.where(files.c.night == night)
    ranked = ranked.subquery()
    return select(ranked.c.id).where(ranked.c.rank == 1)


def record_version(conn: Connection, path: str, size: int, mtime: float, sha256: str) -> tuple[int, bool]:
    """Record a file version; returns ``(file id, True)`` if it changes what ``path`` holds: new bytes, or bytes
    seen here before that come back after others (A, B, A); ``(id, False)`` if the path holds these bytes already."""
    row = conn.execute(select(files.c.id).where(files.c.path == path, files.c.sha256 == sha256)).first()
    if row is not None:
        current = latest_version(conn, path)
        came_back = current is not None and current.id != row.id
        now = utcnow()
        conn.execute(update(files).where(files.c.id == row.id).values(
            last_seen=now, size=size, mtime=mtime, **({"current_since": now} if came_back else {})))
        return row.id, came_back
    try:
        with conn.begin_nested():
            now = utcnow()
            file_id = conn.execute(insert(files).values(
                path=path, size=size, mtime=mtime, sha256=sha256, state="seen", first_seen=now, last_seen=now,
                current_since=now,
            )).inserted_primary_key[0]
    except IntegrityError:  # another watcher recorded it a moment ago
        row = conn.execute(select(files.c.id).where(files.c.path == path, files.c.sha256 == sha256)).one()
        return row.id, False
    return file_id, True


def set_file_state(conn: Connection, file_ids: Iterable[int], state: str, reason: str | None = None,
                   **values: Any) -> None:
    ids = list(file_ids)
    if ids:
        conn.execute(update(files).where(files.c.id.in_(ids)).values(state=state, reason=reason, **values))


def set_member_files_state(conn: Connection, members: dict[str, Any], state: str, reason: str | None = None) -> None:
    """Update the ledger rows of a set version's members (matched by path and hash)."""
    pairs = list(zip(members["paths"], members["sha256"], strict=True))
    condition = [and_(files.c.path == p, files.c.sha256 == h) for p, h in pairs]
    for clause in condition:
        conn.execute(update(files).where(clause).values(state=state, reason=reason))


def current_files(conn: Connection, night: str) -> list[Row]:
    """The newest version of every classified file of ``night`` (kind master/bpm/raw)."""
    return list(conn.execute(select(files).where(files.c.id.in_(current_versions(night)), files.c.kind.is_not(None))))


def first_seen(conn: Connection, file_ids: Sequence[int]) -> datetime | None:
    """When the earliest of these files was first seen (a set's arrival time, for latency figures)."""
    return conn.execute(select(func.min(files.c.first_seen)).where(files.c.id.in_(list(file_ids)))).scalar()


def claim_set(conn: Connection, version: str, state: str, **values: Any) -> bool:
    """Insert the row of a set version; False if it exists already (someone else claimed it)."""
    try:
        with conn.begin_nested():
            conn.execute(insert(sets).values(version=version, state=state, created_at=utcnow(), **values))
    except IntegrityError:
        return False
    return True


def set_row(conn: Connection, version: str) -> Row | None:
    return conn.execute(select(sets).where(sets.c.version == version)).first()


def newer_version_exists(conn: Connection, row: Row) -> bool:
    """True if a later complete version of the same set was claimed (new bytes of a member arrived)."""
    newer = select(sets.c.id).where(sets.c.set_id == row.set_id, sets.c.id > row.id,
                                    sets.c.version != pending_version(row.set_id), sets.c.state != "superseded")
    return conn.execute(newer.limit(1)).first() is not None


def supersede_other_versions(conn: Connection, set_id: str, version: str) -> None:
    """Mark every other version of ``set_id`` superseded (its pending row included), except one running now:
    that job sees :func:`newer_version_exists` when it finishes and stores nothing."""
    conn.execute(update(sets).where(sets.c.set_id == set_id, sets.c.version != version,
                                    sets.c.state.not_in(("running", "superseded"))).values(state="superseded"))


def update_set(conn: Connection, version: str, **values: Any) -> None:
    conn.execute(update(sets).where(sets.c.version == version).values(**values))


def log_job_event(conn: Connection, version: str, job_id: str | None, event: str, detail: str | None = None) -> None:
    conn.execute(insert(job_events).values(version=version, job_id=job_id, event=event, detail=detail, at=utcnow()))


def sets_in_states(conn: Connection, states: Sequence[str]) -> list[Row]:
    return list(conn.execute(select(sets).where(sets.c.state.in_(states)).order_by(sets.c.id)))


def older_than(moment: datetime | None, seconds: float) -> bool:
    return moment is not None and (utcnow() - moment).total_seconds() > seconds
