"""Delivery of alerts (failed certification) and warnings (trend limits) through apprise: the :class:`Notifier` an
entry point builds from the settings and hands down (to the worker's jobs, to ``flatqc process --alerts``). The
alerts' states live in :mod:`flatqc.lifecycle.alerts`.

Sending is never part of a QC job. The job's result transaction makes the notification *due* (one ``deliveries`` row
per channel) and, after the commit, wakes the delivery thread of the worker processes through a Redis list
(:data:`WAKE_KEY`); that thread (:meth:`Notifier.run`) sends every due delivery, each channel in a thread of its own
with a total deadline per attempt (``FLATQC_ALERT_DEADLINE_S``: a server that never answers or trickles bytes is
abandoned then), stores each channel's outcome, and retries only the channels that failed, with back-off, up to
``FLATQC_ALERT_RETRIES`` attempts. Rows, not the wake-up, carry the work: a lost wake-up or a dead sender delays a
delivery by a poll, never loses it. Each message links the set's page on the dashboard (``FLATQC_PUBLIC_URL``); the
cover sheet, drawn later by the picture job, follows the same way as an attachment on channels that take
attachments (:meth:`Notifier.cover_due`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apprise
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Connection, Engine, Row

from flatqc import ledger
from flatqc.db import WARNING, findings_from_json, utcnow
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.lifecycle.alerts import DeliveryKind
from flatqc.settings import Settings
from flatqc.urls import masked
from qc.certify import sentence

log = logging.getLogger(__name__)

WAKE_KEY = "{}-notify"
"""The Redis list (``<queue_name>-notify``) a job pushes to after making deliveries due; delivery threads pop it."""
POLL_S = 2.0
"""The longest a delivery thread waits between looks at the due deliveries without a wake-up [s]."""
HOLD_S = 30.0
"""A delivery taken for an attempt is due again this long after the attempt's deadline, should its sender have died
meanwhile [s]."""


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


@dataclass(frozen=True)
class Message:
    """What one delivery sends."""

    title: str
    body: str
    notify_type: str
    attach: str | None = None


class _Errors(logging.Handler):
    """The last warning apprise logged in each sending thread (its reason for a failed send)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: dict[int | None, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.by_thread[record.thread] = masked(record.getMessage())


class Notifier:
    """Sends notifications to the apprise ``urls`` (none: nothing is sent, and the alert says so), linking the
    dashboard at ``public_url``. Each channel is tried up to ``retries`` times, each attempt abandoned after
    ``deadline_s``, a failed one again after ``backoff_s`` doubled per attempt. ``connection``: the Redis through
    which jobs wake the delivery threads (``wake_key``); without it they find due deliveries within
    :data:`POLL_S`."""

    def __init__(self, urls: list[str], retries: int = 3, public_url: str = "http://127.0.0.1:8080",
                 backoff_s: float = 1.0, deadline_s: float = 10.0, connection: Redis | None = None,
                 wake_key: str = WAKE_KEY.format("flatqc")) -> None:
        self.urls, self.retries, self.public_url = list(urls), retries, public_url
        self.backoff_s, self.deadline_s = backoff_s, deadline_s
        self.connection, self.wake_key = connection, wake_key
        self.channels = {masked(url): url for url in self.urls}
        """The URLs by the name stored with their deliveries (passwords masked)."""
        self._hanging: dict[str, threading.Thread] = {}
        """Sends abandoned at their deadline and still running, by channel: at most one per channel."""

    @classmethod
    def from_settings(cls, settings: Settings, connection: Redis | None = None) -> Notifier:
        """``FLATQC_ALERT_URLS``, ``FLATQC_ALERT_RETRIES``, ``FLATQC_ALERT_DEADLINE_S`` and ``FLATQC_PUBLIC_URL``;
        jobs wake the delivery threads through ``connection``."""
        return cls(settings.alert_urls, settings.alert_retries, settings.public_url,
                   deadline_s=settings.alert_deadline_s, connection=connection,
                   wake_key=WAKE_KEY.format(settings.queue_name))

    # -- making deliveries due (in the caller's transaction), waking the senders ---------------------------------
    def due(self, conn: Connection, alert_id: int) -> None:
        """Make alert ``alert_id``'s notification due on every channel, in the transaction of ``conn`` (the one that
        recorded the alert); :meth:`wake` after its commit."""
        alert_lifecycle.notification_due(conn, alert_id, list(self.channels))

    def cover_due(self, engine: Engine, set_id: str, cover: Path) -> bool:
        """After the picture job drew ``cover``: make it due on the channels that take attachments, as a follow-up
        of the set's open alert that was notified and has not had its cover yet, and wake the senders; True if so."""
        channels = [name for name, url in self.channels.items() if _takes_attachments(url)]
        if not channels or not cover.is_file():
            return False
        with engine.begin() as conn:
            row = ledger.cover_due(conn, set_id)
            if row is None or not alert_lifecycle.cover_due(conn, row.id, channels, str(cover)):
                return False
        self.wake()
        return True

    def wake(self) -> None:
        """Tell a delivery thread that deliveries are due (a Redis error is logged: it finds them by polling)."""
        if self.connection is None:
            return
        try:
            with self.connection.pipeline() as pipe:
                pipe.lpush(self.wake_key, 1)
                pipe.ltrim(self.wake_key, 0, 99)
                pipe.execute()
        except RedisError as exc:
            log.warning("delivery thread not woken (%s); it finds the alert within %s s", exc, POLL_S)

    # -- sending ----------------------------------------------------------------------------------------------
    def run(self, engine: Engine, stop: threading.Event) -> None:
        """The delivery thread: send due deliveries until ``stop`` is set, woken by jobs or every :data:`POLL_S`.
        A failing database or Redis is logged and tried again."""
        while not stop.is_set():
            try:
                while self.deliver_due(engine) and not stop.is_set():
                    pass
                self._wait(engine, stop)
            except Exception as exc:  # noqa: BLE001 - the thread outlives a database or Redis outage
                log.warning("notifications: %s; trying again in %s s", exc, POLL_S)
                stop.wait(POLL_S)

    def _wait(self, engine: Engine, stop: threading.Event) -> None:
        """Until a wake-up, the next delivery's time, ``stop`` or :data:`POLL_S`, whichever comes first."""
        with engine.connect() as conn:
            due_at = ledger.next_delivery_due(conn)
        wait = POLL_S if due_at is None else min(POLL_S, max((due_at - utcnow()).total_seconds(), 0.0))
        if wait <= 0 or stop.is_set():
            return
        if self.connection is None:
            stop.wait(wait)
        else:
            self.connection.blpop([self.wake_key], timeout=wait)

    def deliver_now(self, engine: Engine, alert_ids: list[int]) -> None:
        """Without a queue (``flatqc process --alerts``): make the alerts due and deliver them here, with the same
        deadline, retries and outcomes, waiting between retries but not after the last."""
        if not alert_ids:
            return
        with engine.begin() as conn:
            for alert_id in alert_ids:
                self.due(conn, alert_id)
        while True:
            self.deliver_due(engine)
            with engine.connect() as conn:
                due_at = ledger.next_delivery_due(conn)
            if due_at is None:
                return
            time.sleep(max((due_at - utcnow()).total_seconds(), 0.0))

    def deliver_due(self, engine: Engine) -> int:
        """One round: take every due delivery, send them all at once (each channel in its own thread, abandoned at
        the deadline), store each outcome; returns how many were attempted."""
        with engine.connect() as conn:
            rows = ledger.due_deliveries(conn)
        hold_until = utcnow() + timedelta(seconds=self.deadline_s + HOLD_S)
        taken = []
        for row in rows:
            with engine.begin() as conn:
                if alert_lifecycle.claim_delivery(conn, row, hold_until):
                    taken.append(row)
        if not taken:
            return 0
        errors = self._send_all([(self.channels.get(row.channel), self._message(engine, row)) for row in taken])
        for row, error in zip(taken, errors, strict=True):
            attempt = row.attempts + 1
            if error is not None:
                log.warning("alert #%s, %s, attempt %s of %s: %s", row.alert_id, row.channel, attempt, self.retries,
                            error)
            retry_at = (utcnow() + timedelta(seconds=self.backoff_s * 2 ** (attempt - 1))
                        if error is not None and attempt < self.retries else None)
            with engine.begin() as conn:
                alert_lifecycle.delivery_done(conn, row, error, retry_at)
        return len(taken)

    def _message(self, engine: Engine, delivery: Row) -> Message:
        with engine.connect() as conn:
            row = ledger.alert_row(conn, delivery.alert_id)
        if delivery.kind == DeliveryKind.COVER:
            page = set_url(self.public_url, row.set_id)
            return Message(f"Cover sheet of set {row.set_id} ({row.setting_key}, night {row.night})",
                           f"Cover sheet of {row.severity or 'alert'} #{row.id}: {page}", apprise.NotifyType.INFO,
                           delivery.attachment)
        title, body = alert_message(row, self.public_url)
        kind = apprise.NotifyType.WARNING if row.severity == WARNING else apprise.NotifyType.FAILURE
        return Message(title, body, kind)

    def _send_all(self, sends: list[tuple[str | None, Message]]) -> list[str | None]:
        """Send each message to its URL, all at once; the error of each (None: sent). A send still running at the
        deadline is abandoned (its thread ends with its connection) and counts as failed; while it runs, its
        channel is not tried again."""
        outcomes: list[str | None] = [f"no complete answer within {self.deadline_s:g} s"] * len(sends)
        errors = _Errors()
        threads = []

        def send(index: int, url: str, message: Message) -> None:
            outcomes[index] = _send(url, message, errors)

        for index, (url, message) in enumerate(sends):
            hanging = self._hanging.get(url or "")
            if url is None:
                outcomes[index] = "not in FLATQC_ALERT_URLS any more"
            elif hanging is not None and hanging.is_alive():
                outcomes[index] = "an earlier attempt on this channel is still hanging"
            else:
                thread = threading.Thread(target=send, args=(index, url, message), daemon=True,
                                          name=f"notify-{masked(url)}")
                threads.append((url, thread))
        logger = logging.getLogger("apprise")
        logger.addHandler(errors)
        try:
            end = time.monotonic() + self.deadline_s
            for _, thread in threads:
                thread.start()
            for url, thread in threads:
                thread.join(max(end - time.monotonic(), 0.0))
                if thread.is_alive():
                    self._hanging[url] = thread
            return list(outcomes)
        finally:
            logger.removeHandler(errors)


def _send(url: str, message: Message, errors: _Errors) -> str | None:
    """Send ``message`` to the one channel ``url`` (its plugin sends in this thread); its error (the plugin's last
    warning), or None if it was sent."""
    channel = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if not channel:
        return "apprise cannot use this URL"
    if message.attach is not None and not Path(message.attach).is_file():
        return f"{Path(message.attach).name} is gone"
    try:
        if channel.notify(title=message.title, body=message.body, notify_type=message.notify_type,
                          attach=message.attach):
            return None
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is this channel's failure, not the thread's end
        return masked(f"{type(exc).__name__}: {exc}")
    return errors.by_thread.get(threading.get_ident(), "delivery failed")


def _takes_attachments(url: str) -> bool:
    """Whether the apprise channel of ``url`` sends attachments (mail, Slack bots, JSON webhooks ...)."""
    instance = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    return bool(instance and instance.attachment_support)
