"""The life cycle of a set version (sha256 of its members' hashes; the unique column makes the claim exactly-once)::

    waiting ──timeout──> incomplete            (the row of a set not complete yet, one per set_id)
    queued|running|failed ──start──> running ──> done (verdict) | rejected (bad data) | queued (retry) | failed
                                             └──> incomplete (a member vanished) ──its bytes back (claim)──> queued
    queued|running|failed|done|rejected ──requeue──> queued          (job lost, transient failure over, Reprocess)
    queued|running|failed ──requeue_automatically, past the cap──> failed  (gave up; waits for Retry)
    any non-final ──newer version of a member──> superseded (its job stores nothing)

**Fencing.** Each attempt at a set holds a token: the ``sets.token`` of the row :func:`start` returns (start
increments it, and so do :func:`requeue` and a claim). The transitions of an attempt (:func:`finish`,
:func:`reject`, :func:`retry_later`, :func:`fail`, :func:`supersede_if_overtaken`, the pictures') take that row and
move the set only while its token is still the row's; a late writer (a stalled worker that came back, a job whose
set was reprocessed while it ran) gets :class:`~flatqc.lifecycle.StaleAttempt` and its transaction, QC1 rows and
alert included, is rolled back. A caller that read a row earlier (the repair pass, the dashboard) is fenced the same
way: the set is moved only if nobody moved it since.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from flatqc.db import job_events, sets, utcnow
from flatqc.files import path_from_text, safe_text
from flatqc.ledger import older_than
from flatqc.lifecycle import StaleAttempt, TransitionRefused
from flatqc.lifecycle.files import (
    finish_versions,
    hold,
    queue_files,
    reject_files,
    reject_versions,
    vanish,
    wait_for_member,
)
from flatqc.queue import Lane, job_id_for


class SetState(StrEnum):
    WAITING = "waiting"
    INCOMPLETE = "incomplete"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class Pictures(StrEnum):
    """State of a done set's pictures (flat1..flat5, cover), drawn by their own job after the QC1 rows."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


STARTABLE = (SetState.QUEUED, SetState.RUNNING, SetState.FAILED)
"""States a job starts its set from (running: an earlier attempt was lost; failed: the set is tried again)."""
REQUEUABLE = (SetState.QUEUED, SetState.RUNNING, SetState.FAILED, SetState.DONE, SetState.REJECTED)
_PENDING = "pending-"


def set_version(member_hashes: Iterable[str]) -> str:
    """Id of a set version: sha256 over the sorted content hashes of its members."""
    return hashlib.sha256("\n".join(sorted(member_hashes)).encode()).hexdigest()


def is_complete_version(version: str) -> bool:
    """False for the row of a set that is not complete yet (it has no member hashes to be a version of)."""
    return not version.startswith(_PENDING)


def _pending_version(set_id: str) -> str:
    return f"{_PENDING}{set_id}"


@dataclass(frozen=True)
class Members:
    """The member files of a set version (master, BPM, raws), as ledger text paths and their sha256."""

    paths: tuple[str, ...]
    sha256: tuple[str, ...]

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Members:
        return cls(tuple(value["paths"]), tuple(value["sha256"]))

    def as_json(self) -> dict[str, list[str]]:
        return {"paths": list(self.paths), "sha256": list(self.sha256)}

    @property
    def version(self) -> str:
        return set_version(self.sha256)

    @property
    def files(self) -> list[Path]:
        """The members as file-system paths (undecodable names restored)."""
        return [path_from_text(p) for p in self.paths]

    def hashes(self) -> dict[Path, str]:
        return dict(zip(self.files, self.sha256, strict=True))

    def file_versions(self) -> list[tuple[str, str]]:
        """``(ledger path, sha256)`` of each member."""
        return list(zip(self.paths, self.sha256, strict=True))


@dataclass(frozen=True)
class SetKeys:
    """What a set row says about its set besides the members (from the grouping)."""

    set_id: str
    night: str | None
    profile: str | None = None
    setting_key: str | None = None
    n_raw: int | None = None


def _event(conn: Connection, version: str, job_id: str | None, event: str, detail: str | None = None) -> None:
    conn.execute(insert(job_events).values(version=version, job_id=job_id, event=event,
                                           detail=safe_text(detail) if detail else detail, at=utcnow()))


def _move(conn: Connection, row: Row, allowed_from: Sequence[SetState], to: str, **values: Any) -> None:
    """Write ``values`` to set version ``row`` if it is in one of ``allowed_from`` and its token is still
    ``row.token``; else StaleAttempt (the token moved) or TransitionRefused. ``to`` names the move for people."""
    moved = conn.execute(update(sets).where(sets.c.version == row.version, sets.c.token == row.token,
                                            sets.c.state.in_(allowed_from)).values(**values)).rowcount
    if moved == 1:
        return
    now = conn.execute(select(sets.c.state, sets.c.token).where(sets.c.version == row.version)).first()
    state, token = (now.state, now.token) if now is not None else (None, None)
    subject = f"set {row.set_id} version {row.version[:12]}"
    if token != row.token:
        raise StaleAttempt(f"{subject}: token {row.token} is no longer current (the set is {state}, token {token}); "
                           f"not moved to {to}", state)
    raise TransitionRefused(f"{subject} is {state}; not moved to {to}", state)


# -- sets seen by the watcher -------------------------------------------------------------------------------------
def claim_complete(conn: Connection, keys: SetKeys, members: Members, member_ids: Sequence[int],
                   first_arrival: Any, lane: Lane = Lane.REALTIME) -> str | None:
    """Claim a complete set version for the QC queue of ``lane``; returns its job id, or None if it was claimed
    before.

    Bytes that come back after a newer version (A, B, A) make their superseded version current again.
    """
    version = members.version
    job_id, why = job_id_for(version), "set complete"
    try:
        with conn.begin_nested():
            conn.execute(insert(sets).values(
                version=version, state=SetState.QUEUED, set_id=keys.set_id, night=keys.night, profile=keys.profile,
                setting_key=keys.setting_key, n_raw=keys.n_raw, members=members.as_json(), job_id=job_id,
                lane=lane, first_arrival=first_arrival, created_at=utcnow(), queued_at=utcnow()))
    except IntegrityError:
        known = conn.execute(select(sets).where(sets.c.version == version)).one()
        if known.state not in (SetState.SUPERSEDED, SetState.INCOMPLETE):  # queued, running or finished already
            # complete again after a member was briefly missing or unreadable (A, broken B, A): not waiting
            conn.execute(update(sets).where(sets.c.version == _pending_version(keys.set_id),
                                            sets.c.state.in_((SetState.WAITING, SetState.INCOMPLETE)))
                         .values(state=SetState.SUPERSEDED))
            return None
        job_id, why = job_id_for(version, known.attempts + 1), "files hold this version's bytes again"
        _move(conn, known, (SetState.SUPERSEDED, SetState.INCOMPLETE), SetState.QUEUED, state=SetState.QUEUED,
              reason=None, job_id=job_id, lane=lane, queued_at=utcnow(), token=known.token + 1)
    queue_files(conn, member_ids, keys.set_id)
    conn.execute(update(sets).where(sets.c.set_id == keys.set_id, sets.c.version != version,
                                    sets.c.state.not_in((SetState.RUNNING, SetState.SUPERSEDED)))
                 .values(state=SetState.SUPERSEDED))  # a running one finds out when it finishes
    _event(conn, version, job_id, "queued", why)
    return job_id


def note_partial(conn: Connection, keys: SetKeys, missing: str, present_ids: Sequence[int]) -> None:
    """A set not complete yet: its one waiting row (created, or updated with what is missing now). Not for a set
    with a complete version that counts (queued ... done, or incomplete since a member vanished): that version's
    row says what became of it, and the files stay as they are."""
    claimed = select(sets.c.id).where(sets.c.set_id == keys.set_id, ~sets.c.version.startswith(_PENDING),
                                      sets.c.state != SetState.SUPERSEDED)
    if conn.execute(claimed.limit(1)).first() is not None:
        return
    pending = _pending_version(keys.set_id)
    try:
        with conn.begin_nested():
            conn.execute(insert(sets).values(version=pending, state=SetState.WAITING, set_id=keys.set_id,
                                             night=keys.night, reason=missing, first_arrival=utcnow(),
                                             created_at=utcnow()))
    except IntegrityError:
        row = conn.execute(select(sets.c.state).where(sets.c.version == pending)).one()
        if row.state in (SetState.WAITING, SetState.INCOMPLETE, SetState.SUPERSEDED):
            conn.execute(update(sets).where(sets.c.version == pending).values(
                reason=missing, state=SetState.INCOMPLETE if row.state == SetState.INCOMPLETE else SetState.WAITING))
    hold(conn, present_ids, f"set {keys.set_id}: {missing}", keys.set_id)


def reject_grouping(conn: Connection, keys: SetKeys, members: Members, member_ids: Sequence[int],
                    reason: str) -> None:
    """Members that disagree (inconsistent set): the set version and its files are rejected."""
    try:
        with conn.begin_nested():
            conn.execute(insert(sets).values(version=members.version, state=SetState.REJECTED, set_id=keys.set_id,
                                             night=keys.night, reason=safe_text(reason), members=members.as_json(),
                                             created_at=utcnow(), finished_at=utcnow()))
    except IntegrityError:
        pass  # rejected before
    conn.execute(update(sets).where(sets.c.version == _pending_version(keys.set_id))
                 .values(state=SetState.SUPERSEDED))
    reject_files(conn, member_ids, f"set {keys.set_id}: {reason}", keys.set_id)


def mark_incomplete(conn: Connection, older_than_s: float) -> int:
    """Waiting sets whose first file arrived more than ``older_than_s`` ago become incomplete; returns how many."""
    rows = conn.execute(select(sets.c.id, sets.c.created_at).where(sets.c.state == SetState.WAITING)).all()
    late = [r.id for r in rows if older_than(r.created_at, older_than_s)]
    if late:
        conn.execute(update(sets).where(sets.c.id.in_(late), sets.c.state == SetState.WAITING)
                     .values(state=SetState.INCOMPLETE))
    return len(late)


# -- sets in the hands of a job -----------------------------------------------------------------------------------
def start(conn: Connection, version: str, job_id: str | None) -> Row:
    """A job takes its set version: ``running``, with a new token. Returns the set's row, which the attempt hands to
    its later transitions (TransitionRefused: the set is done, rejected or superseded already, nothing to do)."""
    row = conn.execute(select(sets).where(sets.c.version == version)).first()
    if row is None:
        raise LookupError(f"no set version {version} in the ledger")
    _move(conn, row, STARTABLE, SetState.RUNNING, state=SetState.RUNNING, started_at=utcnow(),
          attempts=row.attempts + 1, token=row.token + 1, job_id=job_id or row.job_id)
    _event(conn, version, job_id, "started", f"attempt {row.attempts + 1}")
    return conn.execute(select(sets).where(sets.c.version == version)).one()


def supersede_if_overtaken(conn: Connection, row: Row, job_id: str | None) -> bool:
    """If a later complete version of the same set was claimed while this one's job ran, this one is superseded
    (its job stores nothing else); returns whether it was."""
    newer = select(sets.c.id).where(sets.c.set_id == row.set_id, sets.c.id > row.id,
                                    ~sets.c.version.startswith(_PENDING), sets.c.state != SetState.SUPERSEDED)
    if conn.execute(newer.limit(1)).first() is None:
        return False
    why = "a newer version of this set arrived while it was processed"
    _move(conn, row, (SetState.RUNNING,), SetState.SUPERSEDED, state=SetState.SUPERSEDED, reason=why,
          finished_at=utcnow())
    _event(conn, row.version, job_id, "superseded", why)
    return True


def finish(conn: Connection, row: Row, job_id: str | None, verdict: str, raw_type: str | None) -> None:
    """The attempt's result: ``done`` with its verdict, members done, pictures pending (the QC1 rows and the alert
    are written in the same transaction)."""
    _move(conn, row, (SetState.RUNNING,), SetState.DONE, state=SetState.DONE, verdict=verdict, reason=None,
          transient=False, raw_type=raw_type, finished_at=utcnow(), pictures=Pictures.PENDING, pictures_error=None)
    finish_versions(conn, Members.from_json(row.members).file_versions())
    _event(conn, row.version, job_id, "finished", verdict)


def reject(conn: Connection, row: Row, job_id: str | None, reason: str) -> None:
    """Bad data (a fact about the bytes): the set version and its members are rejected; no retry."""
    _move(conn, row, (SetState.RUNNING,), SetState.REJECTED, state=SetState.REJECTED, reason=safe_text(reason),
          transient=False, finished_at=utcnow())
    reject_versions(conn, Members.from_json(row.members).file_versions(), f"set {row.set_id}: {reason}")
    _event(conn, row.version, job_id, "rejected", reason)


def member_vanished(conn: Connection, row: Row, job_id: str | None, gone: str, reason: str) -> None:
    """A member (ledger path ``gone``) vanished after the set was queued: the set version is incomplete with
    ``reason``, that member vanished and the others wait; the same bytes back make a claim queue it again."""
    _move(conn, row, (SetState.RUNNING,), SetState.INCOMPLETE, state=SetState.INCOMPLETE, reason=safe_text(reason),
          transient=False, finished_at=utcnow())
    vanish(conn, gone, utcnow())
    wait_for_member(conn, [v for v in Members.from_json(row.members).file_versions() if v[0] != gone],
                    f"set {row.set_id}: {reason}")
    _event(conn, row.version, job_id, "incomplete", reason)


def retry_later(conn: Connection, row: Row, job_id: str | None, error: str, transient: bool) -> None:
    """The attempt failed and the queue will retry it: back to ``queued`` with the error."""
    _move(conn, row, (SetState.RUNNING,), SetState.QUEUED, state=SetState.QUEUED, reason=safe_text(error),
          transient=transient)
    _event(conn, row.version, job_id, "error", f"{error} (will retry)")


def fail(conn: Connection, row: Row, job_id: str | None, error: str, transient: bool) -> None:
    """Retries are exhausted (the attempt's own, or the repair pass's verdict on a job rq gave up on): ``failed``
    with the error. A transient failure is retried by the repair pass once its cause is gone; any other waits for
    Retry on /queue."""
    _move(conn, row, (SetState.RUNNING, SetState.QUEUED), SetState.FAILED, state=SetState.FAILED,
          reason=safe_text(error), transient=transient, finished_at=utcnow())
    _event(conn, row.version, job_id, "error", f"{error} (no retries left)")


def requeue(conn: Connection, row: Row, why: str, new_job: bool = False, lane: Lane | None = None) -> str:
    """Queue a set version again as a person asked (Reprocess, Retry, ``backfill --force``) if it is still as
    ``row`` shows it, on the QC queue of ``lane`` (None: the one it was on, ``row.lane``); returns the job id to
    enqueue. The attempt running it, if any, is fenced off; the count of automatic re-queues starts again. Refused
    for a set that cannot be queued (superseded, not complete) or that changed since ``row`` was read."""
    return _queue_again(conn, row, why, new_job, lane, "requeued" if not new_job else "queued", auto_requeues=0)


def requeue_automatically(conn: Connection, row: Row, why: str, limit: int, new_job: bool = False,
                          event: str = "requeued") -> str | None:
    """The repair pass queues a set version again (job lost, worker killed or stalled, transient failure over): as
    :func:`requeue`, counted in ``sets.auto_requeues`` and in the event's detail. Past ``limit`` such re-queues the
    set is failed instead ("gave up after N automatic re-queues: ``why``"), not transient, so that it waits for a
    person's Retry; returns None then."""
    if row.auto_requeues >= limit:
        _check_requeuable(row)
        reason = f"gave up after {row.auto_requeues} automatic re-queues: {why}"
        _move(conn, row, (row.state,), SetState.FAILED, state=SetState.FAILED, reason=safe_text(reason),
              transient=False, finished_at=utcnow(), token=row.token + 1)
        _event(conn, row.version, row.job_id, "gave up", reason)
        return None
    count = row.auto_requeues + 1
    return _queue_again(conn, row, f"{why} (automatic re-queue {count} of {limit})", new_job, None, event,
                        auto_requeues=count)


def _check_requeuable(row: Row) -> None:
    if not is_complete_version(row.version) or row.state not in REQUEUABLE:
        raise TransitionRefused(f"set {row.set_id} is {row.state}; not moved to {SetState.QUEUED}", row.state)


def _queue_again(conn: Connection, row: Row, why: str, new_job: bool, lane: Lane | None, event: str,
                 auto_requeues: int) -> str:
    _check_requeuable(row)
    job_id = job_id_for(row.version, row.attempts + 1) if new_job or not row.job_id else row.job_id
    _move(conn, row, (row.state,), SetState.QUEUED, state=SetState.QUEUED, job_id=job_id, lane=lane or row.lane,
          queued_at=utcnow(), token=row.token + 1, auto_requeues=auto_requeues)
    _event(conn, row.version, job_id, event, why)
    return job_id


# -- pictures of a done set ---------------------------------------------------------------------------------------
def pictures_drawn(conn: Connection, row: Row) -> None:
    """The picture job drew the pictures of done set ``row`` (refused if the set was queued or done again since)."""
    _move(conn, row, (SetState.DONE,), "pictures done", pictures=Pictures.DONE, pictures_error=None)


def pictures_failed(conn: Connection, row: Row, error: str) -> None:
    """The picture job of done set ``row`` gave up (the repair pass queues it again later)."""
    _move(conn, row, (SetState.DONE,), "pictures failed", pictures=Pictures.FAILED, pictures_error=safe_text(error))


def pictures_requeued(conn: Connection, row: Row) -> None:
    """The repair pass queues the picture job of done set ``row`` again."""
    _move(conn, row, (SetState.DONE,), "pictures pending", pictures=Pictures.PENDING)


# -- `flatqc process` (no queue, no ledger of files) ----------------------------------------------------------------
def record_processed(conn: Connection, keys: SetKeys, members: Members, state: SetState, reason: str | None,
                     verdict: str | None, raw_type: str | None) -> None:
    """The row of a set version processed at once by ``flatqc process`` (replaces an earlier one; an attempt of a
    service on that version is fenced off, since the new row starts with token 0)."""
    now = utcnow()
    conn.execute(sets.delete().where(sets.c.version == members.version))
    conn.execute(insert(sets).values(
        version=members.version, state=state, reason=safe_text(reason) if reason else None, set_id=keys.set_id,
        night=keys.night, profile=keys.profile, setting_key=keys.setting_key, n_raw=keys.n_raw,
        raw_type=raw_type, members=members.as_json(), verdict=verdict, created_at=now, finished_at=now,
        pictures=Pictures.DONE if state == SetState.DONE else None))
