"""Reads of the ledger (``files``, ``sets``, ``alerts`` and their ``deliveries``): what the watcher, the worker,
the commands and the web ask of it.

Every write of a state goes through :mod:`flatqc.lifecycle`. The ledger, not the event stream, is the truth: a file
version is (path, sha256); a set version is the hash of its members' hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.engine import Connection, Row

from flatqc.db import alerts, deliveries, files, sets, severity_is, utcnow


def _newest_first() -> tuple:
    """Order of a path's versions, the current one first: the bytes that arrived last (ties: the later row)."""
    return func.coalesce(files.c.current_since, files.c.first_seen).desc(), files.c.id.desc()


def latest_version(conn: Connection, path: str) -> Row | None:
    """The current ledger row of ``path`` (its bytes are what the file held when last taken)."""
    return conn.execute(select(files).where(files.c.path == path).order_by(*_newest_first()).limit(1)).first()


def current_versions(night: str | None = None, since: str | None = None) -> Select:
    """A query of the ids of every path's current version, optionally of one night, or of the nights from ``since``
    on (and those of no night): a path lies in one night's folder, so its versions share the night."""
    rank = func.row_number().over(partition_by=files.c.path, order_by=_newest_first()).label("rank")
    query = select(files.c.id, rank)
    if night is not None:
        query = query.where(files.c.night == night)
    if since is not None:
        query = query.where(or_(files.c.night >= since, files.c.night.is_(None)))
    ranked = query.subquery()
    return select(ranked.c.id).where(ranked.c.rank == 1)


def known_files(conn: Connection) -> dict[str, tuple[int, float, str]]:
    """``path -> (size, mtime, state)`` of every path's current version: what a rescan compares the disk with."""
    query = select(files.c.path, files.c.size, files.c.mtime, files.c.state).where(files.c.id.in_(current_versions()))
    return {r.path: (r.size, r.mtime, r.state) for r in conn.execute(query)}


def current_files(conn: Connection, night: str) -> list[Row]:
    """The newest version of every classified file of ``night`` (kind master/bpm/raw) that is still on disk."""
    return list(conn.execute(select(files).where(files.c.id.in_(current_versions(night)), files.c.kind.is_not(None),
                                                 files.c.state != "vanished")))


def nights_with_open_work(conn: Connection) -> list[str]:
    """Nights whose grouping may be behind the ledger: classified files not in a finished set yet, or sets waiting.
    Derived from the ledger, so a watcher killed between recording files and grouping them catches up at start."""
    from_files = select(files.c.night).where(files.c.id.in_(current_versions()), files.c.kind.is_not(None),
                                             files.c.state.in_(("seen", "waiting"))).distinct()
    from_sets = select(sets.c.night).where(sets.c.state == "waiting").distinct()
    return sorted({n for n in conn.execute(from_files).scalars()} | {n for n in conn.execute(from_sets).scalars()}
                  - {None})


def first_seen(conn: Connection, file_ids: Sequence[int]) -> datetime | None:
    """When the earliest of these files was first seen (a set's arrival time, for latency figures)."""
    return conn.execute(select(func.min(files.c.first_seen)).where(files.c.id.in_(list(file_ids)))).scalar()


def set_row(conn: Connection, version: str) -> Row | None:
    return conn.execute(select(sets).where(sets.c.version == version)).first()


def sets_in_states(conn: Connection, states: Sequence[str]) -> list[Row]:
    return list(conn.execute(select(sets).where(sets.c.state.in_(states)).order_by(sets.c.id)))


def older_than(moment: datetime | None, seconds: float) -> bool:
    return moment is not None and (utcnow() - moment).total_seconds() > seconds


def alerts_newest_first(conn: Connection, state: str | None = None, severity: str | None = None) -> list[Row]:
    """Alerts and warnings, newest first, optionally of one state (``open``...) and one severity."""
    query = select(alerts).order_by(alerts.c.id.desc())
    if state:
        query = query.where(alerts.c.state == state)
    if severity:
        query = query.where(severity_is(severity))
    return list(conn.execute(query))


def alert_row(conn: Connection, alert_id: int) -> Row:
    """The ``alerts`` row ``alert_id`` (NoResultFound if there is none)."""
    return conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()


def cover_due(conn: Connection, set_id: str) -> Row | None:
    """The set's newest open alert that was notified and has not had its cover sheet yet, if any."""
    return conn.execute(select(alerts).where(alerts.c.set_id == set_id, alerts.c.state == "open",
                                             alerts.c.notified_at.is_not(None), alerts.c.cover_sent_at.is_(None))
                        .order_by(alerts.c.id.desc())).first()


def due_deliveries(conn: Connection, limit: int = 100) -> list[Row]:
    """Deliveries due now (never tried, or their retry's time came, or their sender died), oldest first."""
    return list(conn.execute(select(deliveries).where(deliveries.c.due_at <= utcnow())
                             .order_by(deliveries.c.due_at, deliveries.c.id).limit(limit)))


def next_delivery_due(conn: Connection) -> datetime | None:
    """When the next delivery is due (None: none waits)."""
    return conn.execute(select(func.min(deliveries.c.due_at))).scalar()


def deliveries_of(conn: Connection, alert_ids: Sequence[int]) -> dict[int, list[Row]]:
    """The deliveries of each alert (notification, then cover sheet; each in the order of the channels)."""
    found: dict[int, list[Row]] = {alert_id: [] for alert_id in alert_ids}
    for row in conn.execute(select(deliveries).where(deliveries.c.alert_id.in_(list(alert_ids)))
                            .order_by(deliveries.c.alert_id, deliveries.c.kind, deliveries.c.id)):
        found[row.alert_id].append(row)
    return found
