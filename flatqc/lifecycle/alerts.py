"""The life cycle of an alert (one per failing set) and of a warning (one per set outside its HealthCheck trend
limits), each::

    open ──acknowledge──> acknowledged;   open|acknowledged ──passing run──> resolved

the same failure again sends nothing; changed reasons update the alert (open again) and send it again. The
notification of an alert is recorded here too (attempts, errors; the cover sheet that follows once).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from flatqc.db import ALERT, WARNING, alerts, findings_json, severity_is, utcnow
from flatqc.lifecycle import TransitionRefused
from qc.records import Finding, SetResult


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


ACTIVE_ALERT_STATES = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


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
            _move(conn, active.id, AlertState.RESOLVED, ACTIVE_ALERT_STATES, resolved_at=now, updated_at=now,
                  version=version)
        return None
    encoded = findings_json(reasons)
    if active is not None:
        if active.reasons == encoded:
            return None
        _move(conn, active.id, AlertState.OPEN, ACTIVE_ALERT_STATES, reasons=encoded, version=version,
              updated_at=now, cover_sent_at=None)
        return active.id
    return conn.execute(insert(alerts).values(
        set_id=result.set_id, version=version, night=result.night, profile=result.profile,
        setting_key=result.setting_key, reasons=encoded, state=AlertState.OPEN, severity=severity, created_at=now,
        updated_at=now,
    ).returning(alerts.c.id)).scalar_one()


def acknowledge(conn: Connection, alert_id: int, by: str, comment: str | None = None) -> None:
    """Acknowledge an open alert (TransitionRefused if there is no open alert with that id)."""
    now = utcnow()
    _move(conn, alert_id, AlertState.ACKNOWLEDGED, (AlertState.OPEN,), acknowledged_by=by, acknowledged_at=now,
          comment=comment, updated_at=now)


def _move(conn: Connection, alert_id: int, state: AlertState, allowed_from: Sequence[AlertState],
          **values: Any) -> None:
    """Alert ``alert_id`` to ``state`` with ``values`` if it is in one of ``allowed_from``; else TransitionRefused."""
    moved = conn.execute(update(alerts).where(alerts.c.id == alert_id, alerts.c.state.in_(allowed_from))
                         .values(state=state, **values)).rowcount
    if moved != 1:
        current = conn.execute(select(alerts.c.state).where(alerts.c.id == alert_id)).scalar()
        raise TransitionRefused(f"alert #{alert_id} is {current or 'unknown'}; not moved to {state}", current)


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
