"""The one owner of every state change of files, sets and alerts: named transitions, each checking where it starts.

No other module writes ``files.state``, ``sets.state`` or ``alerts.state``. Each transition runs in the caller's
transaction (so a watcher round or a job's result commits rows, states and alert together); a transition from an
unexpected state changes nothing (and says so in the log where that is news).

File version (path + sha256)::

    seen ──classified──> waiting ──set claimed──> queued ──job finished──> done
      │                     └──newer bytes of the path──> superseded (kept for history)
      ├─ not a flat product / hidden / symlink out ──> ignored (reason)
      └─ bytes bad (not FITS, truncated, bad layout, inconsistent set) ──> rejected (reason)

A transient fault (database, ENOSPC, EIO) is never a state: the file is simply taken again later.

Set version (sha256 of its members' hashes; the unique column makes the claim exactly-once)::

    waiting ──timeout──> incomplete            (the row of a set not complete yet, one per set_id)
    queued ──start──> running ──> done (verdict) | rejected (bad data) | queued (retry) | failed
    any non-final ──newer version of a member──> superseded (its job stores nothing)

Alert (one per failing set) and warning (one per set outside its HealthCheck trend limits), each::

    open ──acknowledge──> acknowledged; open|acknowledged ──passing run──> resolved

the same failure again sends nothing; changed reasons update the alert and send it again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from flatqc.db import ALERT, WARNING, alerts, files, findings_json, job_events, sets, severity_is, utcnow
from flatqc.files import path_from_text, safe_text
from flatqc.ledger import latest_version, older_than
from flatqc.queue import Lane, job_id_for
from qc.records import Finding, SetResult

log = logging.getLogger(__name__)


class FileState(StrEnum):
    SEEN = "seen"
    WAITING = "waiting"
    QUEUED = "queued"
    DONE = "done"
    SUPERSEDED = "superseded"
    IGNORED = "ignored"
    REJECTED = "rejected"


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


FINAL_SET_STATES = (SetState.DONE, SetState.REJECTED, SetState.SUPERSEDED)
OPEN_FILE_STATES = (FileState.SEEN, FileState.WAITING, FileState.QUEUED)
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


def _say_no(what: str, current: Any, wanted: str) -> bool:
    log.info("%s is %s; not moved to %s", what, current, wanted)
    return False


def _event(conn: Connection, version: str, job_id: str | None, event: str, detail: str | None = None) -> None:
    conn.execute(insert(job_events).values(version=version, job_id=job_id, event=event,
                                           detail=safe_text(detail) if detail else detail, at=utcnow()))


# -- files ---------------------------------------------------------------------------------------------------------
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
        fresh = _values(found) if came_back or row.state == FileState.SEEN else {}
        conn.execute(update(files).where(files.c.id == row.id).values(
            last_seen=now, size=found.size, mtime=found.mtime, **fresh,
            **({"current_since": now} if came_back else {})))
        if came_back:
            _supersede_older_files(conn, found.path, row.id)
        return row.id, came_back or row.state == FileState.SEEN
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


def _move_files(conn: Connection, file_ids: Sequence[int], state: FileState, reason: str | None,
                allowed_from: Sequence[str], **values: Any) -> None:
    if file_ids:
        conn.execute(update(files).where(files.c.id.in_(list(file_ids)), files.c.state.in_(allowed_from))
                     .values(state=state, reason=safe_text(reason) if reason else None, **values))


def _move_members(conn: Connection, members: Members, state: FileState, reason: str | None,
                  allowed_from: Sequence[str]) -> None:
    pairs = [and_(files.c.path == p, files.c.sha256 == h) for p, h in zip(members.paths, members.sha256,
                                                                           strict=True)]
    conn.execute(update(files).where(or_(*pairs), files.c.state.in_(allowed_from))
                 .values(state=state, reason=safe_text(reason) if reason else None))


# -- sets seen by the watcher -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetKeys:
    """What a set row says about its set besides the members (from the grouping)."""

    set_id: str
    night: str | None
    profile: str | None = None
    setting_key: str | None = None
    n_raw: int | None = None


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
        if known.state != SetState.SUPERSEDED:  # queued, running or finished already
            # complete again after a member was briefly missing or unreadable (A, broken B, A): not waiting
            conn.execute(update(sets).where(sets.c.version == _pending_version(keys.set_id),
                                            sets.c.state.in_((SetState.WAITING, SetState.INCOMPLETE)))
                         .values(state=SetState.SUPERSEDED))
            return None
        job_id, why = job_id_for(version, known.attempts + 1), "files hold this version's bytes again"
        conn.execute(update(sets).where(sets.c.version == version).values(
            state=SetState.QUEUED, reason=None, job_id=job_id, lane=lane, queued_at=utcnow()))
    _move_files(conn, member_ids, FileState.QUEUED, None, (*OPEN_FILE_STATES, FileState.DONE), set_id=keys.set_id)
    conn.execute(update(sets).where(sets.c.set_id == keys.set_id, sets.c.version != version,
                                    sets.c.state.not_in((SetState.RUNNING, SetState.SUPERSEDED)))
                 .values(state=SetState.SUPERSEDED))  # a running one finds out when it finishes
    _event(conn, version, job_id, "queued", why)
    return job_id


def note_partial(conn: Connection, keys: SetKeys, missing: str, present_ids: Sequence[int]) -> None:
    """A set not complete yet: its one waiting row (created, or updated with what is missing now)."""
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
def start(conn: Connection, version: str, job_id: str | None) -> tuple[Row, bool]:
    """A job takes its set version: ``running``. Returns the set's row and whether it started (False: it is done,
    rejected or superseded already, nothing to do)."""
    row = conn.execute(select(sets).where(sets.c.version == version)).first()
    if row is None:
        raise LookupError(f"no set version {version} in the ledger")
    if row.state in FINAL_SET_STATES:
        return row, _say_no(f"set {row.set_id} version {version[:12]}", row.state, SetState.RUNNING)
    conn.execute(update(sets).where(sets.c.version == version).values(
        state=SetState.RUNNING, started_at=utcnow(), attempts=row.attempts + 1, job_id=job_id or row.job_id))
    _event(conn, version, job_id, "started", f"attempt {row.attempts + 1}")
    return conn.execute(select(sets).where(sets.c.version == version)).one(), True


def supersede_if_overtaken(conn: Connection, row: Row, job_id: str | None) -> bool:
    """If a later complete version of the same set was claimed while this one's job ran, this one is superseded
    (its job stores nothing else); returns whether it was."""
    newer = select(sets.c.id).where(sets.c.set_id == row.set_id, sets.c.id > row.id,
                                    ~sets.c.version.startswith(_PENDING), sets.c.state != SetState.SUPERSEDED)
    if conn.execute(newer.limit(1)).first() is None:
        return False
    why = "a newer version of this set arrived while it was processed"
    conn.execute(update(sets).where(sets.c.version == row.version).values(
        state=SetState.SUPERSEDED, reason=why, finished_at=utcnow()))
    _event(conn, row.version, job_id, "superseded", why)
    return True


def finish(conn: Connection, row: Row, job_id: str | None, verdict: str, raw_type: str | None) -> bool:
    """The set's QC1 rows are written (same transaction): ``done`` with its verdict; pictures pending."""
    current = conn.execute(select(sets.c.state).where(sets.c.version == row.version)).scalar()
    if current != SetState.RUNNING:
        return _say_no(f"set {row.set_id}", current, SetState.DONE)
    conn.execute(update(sets).where(sets.c.version == row.version).values(
        state=SetState.DONE, verdict=verdict, reason=None, transient=False, raw_type=raw_type, finished_at=utcnow(),
        pictures=Pictures.PENDING, pictures_error=None))
    _move_members(conn, Members.from_json(row.members), FileState.DONE, None, (*OPEN_FILE_STATES, FileState.DONE))
    _event(conn, row.version, job_id, "finished", verdict)
    return True


def reject(conn: Connection, row: Row, job_id: str | None, reason: str) -> None:
    """Bad data (a fact about the bytes): the set version and its members are rejected; no retry."""
    conn.execute(update(sets).where(sets.c.version == row.version).values(
        state=SetState.REJECTED, reason=safe_text(reason), transient=False, finished_at=utcnow()))
    _move_members(conn, Members.from_json(row.members), FileState.REJECTED, f"set {row.set_id}: {reason}",
                  (*OPEN_FILE_STATES, FileState.DONE))
    _event(conn, row.version, job_id, "rejected", reason)


def retry_later(conn: Connection, row: Row, job_id: str | None, error: str, transient: bool) -> None:
    """The attempt failed and the queue will retry it: back to ``queued`` with the error."""
    conn.execute(update(sets).where(sets.c.version == row.version, sets.c.state == SetState.RUNNING).values(
        state=SetState.QUEUED, reason=safe_text(error), transient=transient))
    _event(conn, row.version, job_id, "error", f"{error} (will retry)")


def fail(conn: Connection, row: Row, job_id: str | None, error: str, transient: bool) -> None:
    """Retries are exhausted: ``failed`` with the error. A transient failure is retried by the repair pass once
    its cause is gone; any other waits for Retry on /queue."""
    conn.execute(update(sets).where(sets.c.version == row.version,
                                    sets.c.state.in_((SetState.RUNNING, SetState.QUEUED))).values(
        state=SetState.FAILED, reason=safe_text(error), transient=transient, finished_at=utcnow()))
    _event(conn, row.version, job_id, "error", f"{error} (no retries left)")


def requeue(conn: Connection, row: Row, why: str, new_job: bool = False, lane: Lane | None = None) -> str | None:
    """Queue a set version again (job lost, worker killed, transient failure over, reprocess asked), on the QC
    queue of ``lane`` (None: the one it was on, ``row.lane``); returns the job id to enqueue, or None for a set that
    cannot be queued (superseded, not complete)."""
    if not is_complete_version(row.version) or row.state == SetState.SUPERSEDED:
        _say_no(f"set {row.set_id}", row.state, SetState.QUEUED)
        return None
    job_id = job_id_for(row.version, row.attempts + 1) if new_job or not row.job_id else row.job_id
    conn.execute(update(sets).where(sets.c.version == row.version).values(
        state=SetState.QUEUED, job_id=job_id, lane=lane or row.lane, queued_at=utcnow()))
    _event(conn, row.version, job_id, "requeued" if not new_job else "queued", why)
    return job_id


def pictures_drawn(conn: Connection, version: str) -> None:
    conn.execute(update(sets).where(sets.c.version == version).values(pictures=Pictures.DONE, pictures_error=None))


def pictures_failed(conn: Connection, version: str, error: str) -> None:
    conn.execute(update(sets).where(sets.c.version == version).values(
        pictures=Pictures.FAILED, pictures_error=safe_text(error)))


def pictures_requeued(conn: Connection, version: str) -> None:
    conn.execute(update(sets).where(sets.c.version == version).values(pictures=Pictures.PENDING))


# -- alerts: open ──ack──> acknowledged; open|acknowledged ──passing run──> resolved --------------------------------
ACTIVE_ALERT_STATES = ("open", "acknowledged")


def record_alert(conn: Connection, result: SetResult, version: str) -> int | None:
    """Open, update or resolve the alert of ``result``'s set; returns the id of an alert to send, else None.

    A failing set opens an alert unless one with the same reasons is active (nothing new to say);
    different reasons update the alert and send again; a set that no longer fails resolves its alert.
    """
    cert = result.certification
    return _raise_or_resolve(conn, ALERT, result, version, cert.reasons if cert.verdict == "failed" else ())


def record_warning(conn: Connection, result: SetResult, version: str) -> int | None:
    """The same life cycle for the set's *warning* (QC1 outside its HealthCheck trend limits, a severity below a
    failed certification): opened, updated or resolved by ``result.warnings``; returns the id of a warning to send."""
    return _raise_or_resolve(conn, WARNING, result, version, result.warnings)


def _raise_or_resolve(conn: Connection, severity: str, result: SetResult, version: str,
                      reasons: Sequence[Finding]) -> int | None:
    active = conn.execute(select(alerts).where(alerts.c.set_id == result.set_id, severity_is(severity),
                                               alerts.c.state.in_(ACTIVE_ALERT_STATES))
                          .order_by(alerts.c.id.desc())).first()
    now = utcnow()
    if not reasons:
        if active is not None:
            conn.execute(update(alerts).where(alerts.c.id == active.id)
                         .values(state="resolved", resolved_at=now, updated_at=now, version=version))
        return None
    encoded = findings_json(reasons)
    if active is not None:
        if active.reasons == encoded:
            return None
        conn.execute(update(alerts).where(alerts.c.id == active.id)
                     .values(reasons=encoded, version=version, state="open", updated_at=now, cover_sent_at=None))
        return active.id
    return conn.execute(insert(alerts).values(
        set_id=result.set_id, version=version, night=result.night, profile=result.profile,
        setting_key=result.setting_key, reasons=encoded, state="open", severity=severity, created_at=now,
        updated_at=now,
    ).returning(alerts.c.id)).scalar_one()


def acknowledge(conn: Connection, alert_id: int, by: str, comment: str | None = None) -> bool:
    """Acknowledge an open alert; False if there is no open alert with that id."""
    now = utcnow()
    done = conn.execute(update(alerts).where(alerts.c.id == alert_id, alerts.c.state == "open").values(
        state="acknowledged", acknowledged_by=by, acknowledged_at=now, comment=comment, updated_at=now))
    return done.rowcount == 1


# -- notifications of an alert: delivered or not (attempts counted); the cover sheet follows once -------------------
def notification_sent(conn: Connection, alert_id: int, attempts: int, error: str | None) -> None:
    """Record ``attempts`` deliveries of alert ``alert_id``'s notification: sent now, or ``error`` (not sent)."""
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
        notify_attempts=alerts.c.notify_attempts + attempts, notify_error=error,
        notified_at=utcnow() if error is None else None,
    ))


def claim_cover(conn: Connection, alert_id: int) -> bool:
    """Take the sending of alert ``alert_id``'s cover sheet (before it is sent: two picture jobs of one set never
    both send it); False if it was sent or claimed already."""
    return conn.execute(update(alerts).where(alerts.c.id == alert_id, alerts.c.cover_sent_at.is_(None))
                        .values(cover_sent_at=utcnow())).rowcount == 1


def release_cover(conn: Connection, alert_id: int) -> None:
    """The claimed cover sheet was not delivered: a later picture job may send it."""
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(cover_sent_at=None))


# -- `flatqc process` (no queue, no ledger of files) ----------------------------------------------------------------
def record_processed(conn: Connection, keys: SetKeys, members: Members, state: SetState, reason: str | None,
                     verdict: str | None, raw_type: str | None) -> None:
    """The row of a set version processed at once by ``flatqc process`` (replaces an earlier one)."""
    now = utcnow()
    conn.execute(sets.delete().where(sets.c.version == members.version))
    conn.execute(insert(sets).values(
        version=members.version, state=state, reason=safe_text(reason) if reason else None, set_id=keys.set_id,
        night=keys.night, profile=keys.profile, setting_key=keys.setting_key, n_raw=keys.n_raw,
        raw_type=raw_type, members=members.as_json(), verdict=verdict, created_at=now, finished_at=now,
        pictures=Pictures.DONE if state == SetState.DONE else None))
