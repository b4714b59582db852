"""The life cycle of an alert (one per failing set) and of a warning (one per set outside its HealthCheck trend
limits), each::

    open ──acknowledge──> acknowledged;   open|acknowledged ──passing run──> resolved

the same failure again sends nothing; changed reasons update the alert (open again) and send it again. The
notification of an alert is recorded here too: one delivery per channel (attempts, last error, when sent), and
the cover sheet that follows once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection, Row

from flatqc.db import ALERT, WARNING, alerts, deliveries, findings_json, severity_is, utcnow
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


# -- notifications of an alert: one delivery per channel, each retried alone while it fails; the cover follows once --
class DeliveryKind(StrEnum):
    ALERT = "alert"
    """The notification of the alert."""
    COVER = "cover"
    """The cover sheet that follows it, on channels that take attachments."""


def notification_due(conn: Connection, alert_id: int, channels: Sequence[str]) -> None:
    """Make alert ``alert_id``'s notification due now on each of ``channels`` (masked URLs), replacing the outcomes
    of an earlier sending of it; without channels, record that nothing is sent."""
    conn.execute(delete(deliveries).where(deliveries.c.alert_id == alert_id,
                                          deliveries.c.kind == DeliveryKind.ALERT))
    _insert_deliveries(conn, alert_id, DeliveryKind.ALERT, channels)
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
        notify_attempts=0, notified_at=None,
        notify_error=None if channels else "not sent: FLATQC_ALERT_URLS is empty"))


def cover_due(conn: Connection, alert_id: int, channels: Sequence[str], cover: str) -> bool:
    """Make the cover sheet ``cover`` of alert ``alert_id`` due on ``channels``, once per alert (two picture jobs of
    one set never both send it); False if it was due already."""
    claimed = conn.execute(update(alerts).where(alerts.c.id == alert_id, alerts.c.cover_sent_at.is_(None))
                           .values(cover_sent_at=utcnow())).rowcount == 1
    if claimed:
        _insert_deliveries(conn, alert_id, DeliveryKind.COVER, channels, cover)
    return claimed


def _insert_deliveries(conn: Connection, alert_id: int, kind: DeliveryKind, channels: Sequence[str],
                       attachment: str | None = None) -> None:
    if channels:
        now = utcnow()
        conn.execute(insert(deliveries), [dict(alert_id=alert_id, kind=kind, channel=c, attachment=attachment,
                                               attempts=0, due_at=now) for c in channels])


def claim_delivery(conn: Connection, row: Row, hold_until: datetime) -> bool:
    """Take delivery ``row`` (as read) for one more attempt, holding it until ``hold_until`` (then it is due again,
    should its sender die); False if another sender took it meanwhile."""
    return conn.execute(update(deliveries).where(
        deliveries.c.id == row.id, deliveries.c.attempts == row.attempts, deliveries.c.due_at == row.due_at,
    ).values(attempts=row.attempts + 1, due_at=hold_until)).rowcount == 1


def delivery_done(conn: Connection, row: Row, error: str | None, retry_at: datetime | None) -> None:
    """Record the attempt at delivery ``row``: sent (``error`` None), or failed with ``error`` and due again at
    ``retry_at`` (None: given up); the alert's summary columns follow its channels."""
    conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(
        last_error=error, sent_at=utcnow() if error is None else None, due_at=None if error is None else retry_at))
    if row.kind != DeliveryKind.ALERT:
        return
    channels = conn.execute(select(deliveries).where(deliveries.c.alert_id == row.alert_id,
                                                     deliveries.c.kind == DeliveryKind.ALERT)).all()
    sent = [c.sent_at for c in channels if c.sent_at is not None]
    failing = [f"{c.channel}: {c.last_error}" for c in channels if c.sent_at is None and c.last_error]
    conn.execute(update(alerts).where(alerts.c.id == row.alert_id).values(
        notify_attempts=max(c.attempts for c in channels), notified_at=min(sent) if sent else None,
        notify_error="; ".join(failing) or None))


def delivery_outcome(row: Row) -> str:
    """A delivery in words, e.g. ``json://host/alerts: sent`` or ``... : failed 3 times (HTTP 500), given up``."""
    what = f"{row.channel}{' (cover)' if row.kind == DeliveryKind.COVER else ''}"
    if row.sent_at is not None:
        return f"{what}: sent" + (f" on attempt {row.attempts}" if row.attempts > 1 else "")
    if row.last_error is None:
        return f"{what}: pending"
    tries = f"failed {row.attempts} time{'s' if row.attempts > 1 else ''} ({row.last_error})"
    return f"{what}: {tries}, {'retry due' if row.due_at is not None else 'given up'}"
