"""Delivery of alerts (failed certification) and warnings (trend limits) through apprise: the :class:`Notifier` an
entry point builds from the settings and hands down (to the worker's jobs, to ``flatqc process --alerts``). The
alerts' states live in :mod:`flatqc.lifecycle.alerts`.

Recording happens in the job's result transaction; sending happens after the commit, with retries, and a failed
delivery is logged on the alert, never undoing the QC1 rows. Each message links the set's page on the dashboard
(``FLATQC_PUBLIC_URL``); the cover sheet, drawn later by the picture job, follows as an attachment on channels that
take attachments (:meth:`Notifier.send_cover`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apprise
from sqlalchemy.engine import Engine

from flatqc import ledger
from flatqc.db import WARNING, findings_from_json
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.settings import Settings
from qc.certify import sentence

log = logging.getLogger(__name__)


def set_url(public_url: str, set_id: str) -> str:
    """The dashboard page of a set, as a reader of the notification reaches it."""
    return f"{public_url.rstrip('/')}/sets/{quote(set_id)}"


def cover_url(public_url: str, night: str, set_id: str) -> str:
    """The cover sheet of a set on the dashboard."""
    return f"{public_url.rstrip('/')}/files/{quote(night)}/{quote(set_id)}/cover.png"


def alert_message(row: Any, public_url: str) -> tuple[str, str]:
    """Title and body of the notification of one alert row: what failed (value and limit per reason) and where
    to look (set page, cover sheet)."""
    reasons = findings_from_json(row.reasons)
    warning = row.severity == WARNING
    what = "outside its HealthCheck trend limits" if warning else "failed certification"
    title = (f"CRIRES flat QC {'WARNING' if warning else 'FAILED'}: set {row.set_id} ({row.setting_key}, "
             f"night {row.night})")
    body = "\n".join([f"Set {row.set_id} {what}:", *(f"- {sentence(r)}" for r in reasons),
                      f"Night {row.night}, setting {row.setting_key}, {row.severity or 'alert'} #{row.id}.",
                      f"Set page (verdict, plots, Acknowledge): {set_url(public_url, row.set_id)}",
                      f"Cover sheet: {cover_url(public_url, row.night, row.set_id)}"])
    return title, body


def _apprise(urls: list[str], what: str) -> apprise.Apprise:
    notifier = apprise.Apprise()
    for url in urls:
        if not notifier.add(url):
            log.error("%s: apprise cannot use URL %s", what, url.split("://")[0] + "://...")
    return notifier


class Notifier:
    """Sends notifications to the apprise ``urls`` (none: nothing is sent, and the alert says so), linking the
    dashboard at ``public_url``; a failed delivery is retried ``retries`` times with back-off from ``backoff_s``."""

    def __init__(self, urls: list[str], retries: int = 3, public_url: str = "http://127.0.0.1:8080",
                 backoff_s: float = 1.0) -> None:
        self.urls, self.retries, self.public_url, self.backoff_s = list(urls), retries, public_url, backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        """``FLATQC_ALERT_URLS``, ``FLATQC_ALERT_RETRIES`` and ``FLATQC_PUBLIC_URL``."""
        return cls(settings.alert_urls, settings.alert_retries, settings.public_url)

    def send(self, engine: Engine, alert_id: int) -> bool:
        """Send alert ``alert_id`` to every URL; retry with back-off; record the outcome on the alert."""
        if not self.urls:
            with engine.begin() as conn:
                alert_lifecycle.notification_sent(conn, alert_id, 0, "not sent: FLATQC_ALERT_URLS is empty")
            return False
        with engine.connect() as conn:
            row = ledger.alert_row(conn, alert_id)
        title, body = alert_message(row, self.public_url)
        channels = _apprise(self.urls, f"alert #{alert_id}")
        kind = apprise.NotifyType.WARNING if row.severity == WARNING else apprise.NotifyType.FAILURE
        error, attempts = None, 0
        for attempt in range(1, self.retries + 1):
            attempts = attempt
            if channels.notify(title=title, body=body, notify_type=kind):
                error = None
                break
            error = f"delivery failed on attempt {attempt} of {self.retries}"
            log.warning("alert #%s: %s", alert_id, error)
            time.sleep(self.backoff_s * 2 ** (attempt - 1))
        with engine.begin() as conn:
            alert_lifecycle.notification_sent(conn, alert_id, attempts, error)
        return error is None

    def send_cover(self, engine: Engine, set_id: str, cover: Path) -> bool:
        """After the picture job drew ``cover``: send it to the channels that take attachments, as a follow-up of
        the set's open alert that was notified and has not had its cover yet; True if it was sent."""
        with engine.connect() as conn:
            row = ledger.cover_due(conn, set_id)
        if row is None or not self.urls or not cover.is_file():
            return False
        channels = _apprise([u for u in self.urls if _takes_attachments(u)], f"cover of alert #{row.id}")
        if not len(channels):
            return False
        with engine.begin() as conn:
            if not alert_lifecycle.claim_cover(conn, row.id):
                return False
        title = f"Cover sheet of set {row.set_id} ({row.setting_key}, night {row.night})"
        body = f"Cover sheet of {row.severity or 'alert'} #{row.id}: {set_url(self.public_url, row.set_id)}"
        if not channels.notify(title=title, body=body, attach=str(cover)):
            log.warning("cover of alert #%s: delivery failed", row.id)
            with engine.begin() as conn:
                alert_lifecycle.release_cover(conn, row.id)
            return False
        return True


def _takes_attachments(url: str) -> bool:
    """Whether the apprise channel of ``url`` sends attachments (mail, Slack bots, JSON webhooks ...)."""
    instance = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    return bool(instance and instance.attachment_support)
