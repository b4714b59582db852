"""The life cycle of a file version (path + sha256)::

    seen ──classified──> waiting ──set claimed──> queued ──job finished──> done
      │                     └──newer bytes of the path──> superseded (kept for history)
      ├─ not a flat product / hidden / symlink out ──> ignored (reason)
      ├─ bytes bad (not FITS, truncated, bad layout, inconsistent set) ──> rejected (reason)
      └─ (any but superseded) ──path deleted or moved away──> vanished (gone_at) ──same bytes back──> waiting

A transient fault (database, ENOSPC, EIO) is never a state: the file is simply taken again later. Nor is a
permission error (EACCES, EPERM): the version keeps its state and ``unreadable_since`` says since when it cannot be
read (cleared when it is read again); past ``unreadable_give_up_s`` its set is rejected.

The moves are of many files at once (a batch, a set's members): each moves the files that are in a state it starts
from and leaves the others as they are (a raw already claimed by a set is not held back to ``waiting``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from flatqc.db import files, utcnow
from flatqc.files import safe_text
from flatqc.ledger import latest_version


class FileState(StrEnum):
    SEEN = "seen"
    WAITING = "waiting"
    QUEUED = "queued"
    DONE = "done"
    SUPERSEDED = "superseded"
    IGNORED = "ignored"
    REJECTED = "rejected"
    VANISHED = "vanished"


OPEN_FILE_STATES = (FileState.SEEN, FileState.WAITING, FileState.QUEUED)


@dataclass(frozen=True)
class FileRecord:
    """One file version as the watcher found it, with what it is (``kind`` etc.) or why it is not used."""

    path: str
    size: int
    mtime: float
    sha256: str
    state: FileState
    reason: str | None = None
    kind: str | None = None
    profile: str | None = None
    arcfile: str | None = None
    set_id: str | None = None
    night: str | None = None


RECORD_CHUNK = 400
"""Paths looked up (and rows inserted) per statement by :func:`record`."""


def record(conn: Connection, found: Sequence[FileRecord]) -> list[tuple[int, bool]]:
    """Record taken file versions with their classification, in the order given (one lookup and one multi-row
    insert per chunk). Each gives ``(id, True)`` if it changes what its path holds (new bytes, or bytes seen before
    that come back after others: A, B, A), ``(id, False)`` if the path holds these bytes already. Older versions
    of a path that were still open are superseded."""
    results: list[tuple[int, bool]] = []
    for start in range(0, len(found), RECORD_CHUNK):
        chunk = list(found[start:start + RECORD_CHUNK])
        if len({f.path for f in chunk}) != len(chunk):  # a path twice: order matters, one by one
            results += [_record_one(conn, f) for f in chunk]
        else:
            results += _record_chunk(conn, chunk)
    return results


def _values(found: FileRecord) -> dict[str, Any]:
    return {"state": found.state, "reason": safe_text(found.reason) if found.reason else None,
            "kind": found.kind, "profile": found.profile, "arcfile": found.arcfile, "set_id": found.set_id,
            "night": found.night}


def _new_row(found: FileRecord, now: Any) -> dict[str, Any]:
    """The ``files`` row of a version seen for the first time."""
    return dict(path=found.path, size=found.size, mtime=found.mtime, sha256=found.sha256, first_seen=now,
                last_seen=now, current_since=now, **_values(found))


def _record_chunk(conn: Connection, chunk: list[FileRecord]) -> list[tuple[int, bool]]:
    """Distinct paths: the known ones one by one, the new (path, sha256) pairs in one insert."""
    paths = [f.path for f in chunk]
    known_paths = set(conn.execute(select(files.c.path).where(files.c.path.in_(paths)).distinct()).scalars())
    outcome: dict[int, tuple[int, bool]] = {}
    fresh = []
    for index, found in enumerate(chunk):
        if found.path in known_paths:
            outcome[index] = _record_one(conn, found)
        else:
            fresh.append(index)
    if fresh:
        now = utcnow()
        rows = [_new_row(chunk[i], now) for i in fresh]
        try:
            with conn.begin_nested():
                ids = conn.execute(insert(files).returning(files.c.id, sort_by_parameter_order=True),
                                   rows).scalars().all()
        except IntegrityError:  # another watcher recorded some of them a moment ago: one by one
            outcome.update({i: _record_one(conn, chunk[i]) for i in fresh})
        else:
            outcome.update({i: (file_id, True) for i, file_id in zip(fresh, ids, strict=True)})
    return [outcome[i] for i in range(len(chunk))]


def _record_one(conn: Connection, found: FileRecord) -> tuple[int, bool]:
    now = utcnow()
    row = conn.execute(select(files.c.id, files.c.state).where(files.c.path == found.path,
                                                                files.c.sha256 == found.sha256)).first()
    if row is not None:
        current = latest_version(conn, found.path)
        came_back = current is not None and current.id != row.id
        renewed = came_back or row.state in (FileState.SEEN, FileState.VANISHED)
        fresh = _values(found) | {"gone_at": None} if renewed else {}
        conn.execute(update(files).where(files.c.id == row.id).values(
            last_seen=now, size=found.size, mtime=found.mtime, unreadable_since=None, **fresh,
            **({"current_since": now} if came_back else {})))
        if came_back:
            _supersede_older_files(conn, found.path, row.id)
        return row.id, renewed
    try:
        with conn.begin_nested():
            file_id = conn.execute(insert(files).values(**_new_row(found, now)).returning(files.c.id)).scalar_one()
    except IntegrityError:  # another watcher recorded it a moment ago
        return conn.execute(select(files.c.id).where(files.c.path == found.path,
                                                     files.c.sha256 == found.sha256)).one().id, False
    _supersede_older_files(conn, found.path, file_id)
    return file_id, True


def _supersede_older_files(conn: Connection, path: str, current_id: int) -> None:
    conn.execute(update(files).where(files.c.path == path, files.c.id != current_id,
                                     files.c.state.in_(OPEN_FILE_STATES))
                 .values(state=FileState.SUPERSEDED, reason="newer bytes arrived under this name"))


def hold(conn: Connection, file_ids: Sequence[int], reason: str, set_id: str | None = None) -> None:
    """Classified files that wait for the rest of their set (or for a product that lists them)."""
    _move_files(conn, file_ids, FileState.WAITING, reason, (FileState.SEEN, FileState.WAITING),
                **({"set_id": set_id} if set_id else {}))


def ignore(conn: Connection, file_ids: Sequence[int], reason: str) -> None:
    """Files that are not used (an older product of the same set ...), with the reason."""
    _move_files(conn, file_ids, FileState.IGNORED, reason, OPEN_FILE_STATES)


def reject_files(conn: Connection, file_ids: Sequence[int], reason: str, set_id: str | None = None) -> None:
    """Files whose bytes are bad or that form an inconsistent set, with the reason."""
    _move_files(conn, file_ids, FileState.REJECTED, reason, (*OPEN_FILE_STATES, FileState.DONE),
                **({"set_id": set_id} if set_id else {}))


def queue_files(conn: Connection, file_ids: Sequence[int], set_id: str) -> None:
    """The members of a set version claimed for the queue (done ones too: their set is processed again)."""
    _move_files(conn, file_ids, FileState.QUEUED, None, (*OPEN_FILE_STATES, FileState.DONE), set_id=set_id)


def finish_versions(conn: Connection, versions: Sequence[tuple[str, str]]) -> None:
    """The members (``(path, sha256)`` each) of a set version whose job finished: done (and readable)."""
    _move_versions(conn, versions, FileState.DONE, None, unreadable_since=None)


def vanish(conn: Connection, path: str, at: datetime) -> str | None:
    """``path`` is gone from disk (deleted, or moved out of the watched tree or to a hidden name) since ``at``: its
    current version is vanished. Returns that version's night (its grouping changed), None if none or nothing
    moved."""
    current = latest_version(conn, path)
    if current is None or current.state in (FileState.SUPERSEDED, FileState.VANISHED):
        return None
    conn.execute(update(files).where(files.c.id == current.id, files.c.state == current.state).values(
        state=FileState.VANISHED, gone_at=at, reason=f"deleted or moved away (noticed {at:%Y-%m-%d %H:%M:%S} UTC)"))
    return current.night


def wait_for_member(conn: Connection, versions: Sequence[tuple[str, str]], reason: str) -> None:
    """The members (``(path, sha256)`` each) left of a set version one of whose members vanished: waiting again."""
    _move_versions(conn, versions, FileState.WAITING, reason)


def note_unreadable(conn: Connection, path: str, sha256: str, at: datetime) -> datetime:
    """Reading this file version failed on permissions at ``at``; returns since when it has been failing."""
    conn.execute(update(files).where(files.c.path == path, files.c.sha256 == sha256,
                                     files.c.unreadable_since.is_(None)).values(unreadable_since=at))
    since = conn.execute(select(files.c.unreadable_since).where(files.c.path == path,
                                                                files.c.sha256 == sha256)).scalar()
    return since or at


def reject_versions(conn: Connection, versions: Sequence[tuple[str, str]], reason: str) -> None:
    """The members (``(path, sha256)`` each) of a set version whose data are bad: rejected, with the reason."""
    _move_versions(conn, versions, FileState.REJECTED, reason)


def _move_files(conn: Connection, file_ids: Sequence[int], state: FileState, reason: str | None,
                allowed_from: Sequence[str], **values: Any) -> None:
    if file_ids:
        conn.execute(update(files).where(files.c.id.in_(list(file_ids)), files.c.state.in_(allowed_from))
                     .values(state=state, reason=safe_text(reason) if reason else None, **values))


def _move_versions(conn: Connection, versions: Sequence[tuple[str, str]], state: FileState,
                   reason: str | None, **values: Any) -> None:
    if not versions:
        return
    pairs = [and_(files.c.path == path, files.c.sha256 == sha) for path, sha in versions]
    conn.execute(update(files).where(or_(*pairs), files.c.state.in_((*OPEN_FILE_STATES, FileState.DONE)))
                 .values(state=state, reason=safe_text(reason) if reason else None, **values))
