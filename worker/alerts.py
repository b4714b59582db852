"""Delivery of alerts on failed certification through apprise (their states: :mod:`flatqc.lifecycle`).

Recording happens in the job's result transaction; sending happens after the commit, with retries, and a failed
delivery is logged on the alert, never undoing the QC1 rows.
"""

from __future__ import annotations

import json
import logging
import time

import apprise
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from flatqc.db import alerts, utcnow

log = logging.getLogger(__name__)


def alert_message(row: object) -> tuple[str, str]:
    """Title and body of the notification of one alert row."""
    reasons = json.loads(row.reasons)
    title = f"CRIRES flat QC FAILED: set {row.set_id} ({row.setting_key}, night {row.night})"
    body = "\n".join([f"Set {row.set_id} failed certification:", *(f"- {r}" for r in reasons),
                      f"Night {row.night}, setting {row.setting_key}, alert #{row.id}."])
    return title, body


def send_alert(engine: Engine, alert_id: int, urls: list[str], retries: int = 3, backoff_s: float = 1.0) -> bool:
    """Send alert ``alert_id`` to every apprise URL; retry with back-off; record the outcome on the alert."""
    if not urls:
        with engine.begin() as conn:
            conn.execute(update(alerts).where(alerts.c.id == alert_id)
                         .values(notify_error="not sent: FLATQC_ALERT_URLS is empty"))
        return False
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    title, body = alert_message(row)
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            log.error("alert #%s: apprise cannot use URL %s", alert_id, url.split("://")[0] + "://...")
    error, attempts = None, 0
    for attempt in range(1, retries + 1):
        attempts = attempt
        if notifier.notify(title=title, body=body, notify_type=apprise.NotifyType.FAILURE):
            error = None
            break
        error = f"delivery failed on attempt {attempt} of {retries}"
        log.warning("alert #%s: %s", alert_id, error)
        time.sleep(backoff_s * 2 ** (attempt - 1))
    with engine.begin() as conn:
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(
            notify_attempts=alerts.c.notify_attempts + attempts, notify_error=error,
            notified_at=utcnow() if error is None else None,
        ))
    return error is None
