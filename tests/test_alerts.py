"""Alert life cycle (open, same failure again, changed reasons, resolved, acknowledged) and delivery failures."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from flatqc.cli import main
from flatqc.db import alerts, connect, deliveries, findings_from_json
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle.alerts import acknowledge, delivery_outcome, record_alert
from flatqc.notify import Notifier
from flatqc.redis_server import free_port
from flatqc.web.queries import alert_list
from qc.records import Certification, Finding, FindingKind, SetResult
from tests.service_helpers import BadChannel, Webhook

SNR_2 = Finding(FindingKind.CERTIFICATION, "median_snr", 2, 100.0, "<=", 250.0)
FLUX_1 = Finding(FindingKind.CERTIFICATION, "max_flux", 1, 12000.0, ">", 10000.0)
SNR_3 = Finding(FindingKind.CERTIFICATION, "median_snr", 3, 1.0, "<=", 250.0)
RMS_1 = Finding(FindingKind.TREND_LIMIT, "rms_master", 1, 0.104, ">", 0.1, 0.05, 0.1)


def result(verdict: str, reasons: tuple[Finding, ...] = (), warnings: tuple[Finding, ...] = ()) -> SetResult:
    return SetResult(
        set_id="abc", night="2010-05-12", profile="crires", setting_key="1090.400_25.000_Halogen", raw_type="FLAT",
        n_raw=3, dit=10.0, ndit=1, window_ny=512, window_starty=1, mjd_obs=55329.1, reference=None,
        reference_note="", detectors=[], certification=Certification(verdict, (), reasons), warnings=warnings,
    )


def test_alert_life_cycle(db_url: str) -> None:
    engine = connect(db_url)
    failing = result("failed", (SNR_2,))
    with engine.begin() as conn:
        first = record_alert(conn, failing, "v1")
        assert first is not None
        assert record_alert(conn, failing, "v2") is None  # same failure again: nothing new to send
        changed = result("failed", (FLUX_1,))
        assert record_alert(conn, changed, "v3") == first  # new reasons: same alert, sent again
        acknowledge(conn, first, "qc-scientist", "lamp flicker")
        with pytest.raises(TransitionRefused, match="is acknowledged; not moved to acknowledged"):
            acknowledge(conn, first, "someone else")  # only open alerts can be acknowledged
        assert record_alert(conn, result("passed"), "v4") is None
        (row,) = conn.execute(select(alerts)).all()
    assert row.state == "resolved" and row.acknowledged_by == "qc-scientist" and row.resolved_at is not None
    assert findings_from_json(row.reasons) == [FLUX_1]
    engine.dispose()


def test_delivery_is_retried_and_failure_recorded(sqlite_url: str) -> None:
    engine = connect(sqlite_url)
    with engine.begin() as conn:
        alert_id = record_alert(conn, result("failed", (SNR_3,)), "v1")
    dead = f"json://127.0.0.1:{free_port()}/nobody"
    Notifier([dead], retries=3, backoff_s=0.0).deliver_now(engine, [alert_id])
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
        (delivery,) = conn.execute(select(deliveries)).all()
    assert row.notify_attempts == 3 and row.notified_at is None and row.notify_error.startswith(f"{dead}: ")
    assert delivery.attempts == 3 and delivery.due_at is None and delivery.sent_at is None  # given up
    outcome = delivery_outcome(delivery)
    assert outcome.startswith(f"{dead}: failed 3 times (") and outcome.endswith("given up")
    with Webhook().running() as hook:
        Notifier([hook.url], retries=3, backoff_s=0.0).deliver_now(engine, [alert_id])
    with engine.connect() as conn:
        assert conn.execute(select(alerts)).one().notified_at is not None
    assert len(hook.bodies) == 1 and "abc" in hook.bodies[0]["title"]
    assert "- detector 3: median_snr = 1.0 <= 250\n" in hook.bodies[0]["message"]  # worded from the stored data


def test_each_channel_is_retried_alone_and_a_hanging_one_is_abandoned_at_the_deadline(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = connect(sqlite_url)
    with engine.begin() as conn:
        alert_id = record_alert(conn, result("failed", (SNR_3,)), "v1")
    with (Webhook().running() as hook, BadChannel("silent").running() as silent,
          BadChannel("error").running() as error, BadChannel("trickle").running() as trickle):
        urls = [hook.url, silent.url, error.url, trickle.url]
        notifier = Notifier(urls, retries=3, backoff_s=0.0, deadline_s=1.0)
        started = time.monotonic()
        notifier.deliver_now(engine, [alert_id])
        took = time.monotonic() - started
        trickled = trickle.requests
    with engine.connect() as conn:
        rows = {d.channel: d for d in conn.execute(select(deliveries))}
        alert = conn.execute(select(alerts)).one()
    assert len(hook.bodies) == 1 and rows[hook.url].attempts == 1 and rows[hook.url].sent_at is not None
    assert error.requests == 3  # retried alone, up to the cap
    assert trickled == 1  # one send hangs on it at a time: the later attempts wait for it, abandoned too
    for bad in (silent, error, trickle):
        row = rows[bad.url]
        assert row.attempts == 3 and row.sent_at is None and row.due_at is None and row.last_error, bad.mode
    assert "500" in rows[error.url].last_error or "Internal Server Error" in rows[error.url].last_error
    assert took < 3 * 1.0 + 2  # the trickling server (a minute of bytes) held each attempt up to its deadline only
    assert alert.notified_at is not None and alert.notify_attempts == 3
    assert error.url in alert.notify_error and trickle.url in alert.notify_error and hook.url not in alert.notify_error
    (listed,) = alert_list(engine)  # the alerts page's and /api/alerts' rows: each channel's outcome
    assert [d["outcome"] for d in listed["deliveries"]] == [delivery_outcome(rows[url]) for url in urls]
    assert listed["deliveries"][0]["outcome"] == f"{hook.url}: sent"
    monkeypatch.setenv("FLATQC_DB_URL", sqlite_url)
    shown = CliRunner().invoke(main, ["alerts"], catch_exceptions=False, terminal_width=400).output
    assert f"{hook.url}: sent" in shown and f"{error.url}: failed 3 times" in shown
    engine.dispose()


def test_warnings_have_their_own_life_cycle_below_alerts(sqlite_url: str) -> None:
    from flatqc.db import ALERT, WARNING
    from flatqc.lifecycle.alerts import record_warning

    engine = connect(sqlite_url)
    failing = result("failed", (SNR_2,), (RMS_1,))
    with engine.begin() as conn:
        alert_id = record_alert(conn, failing, "v1")
        warning_id = record_warning(conn, failing, "v1")
        assert warning_id not in (None, alert_id)
        assert record_warning(conn, failing, "v2") is None  # the same warning again: nothing to send
        assert record_alert(conn, result("passed", (), (RMS_1,)), "v3") is None  # resolves the alert only
        assert record_warning(conn, result("passed"), "v3") is None  # back inside the limits: resolved
        rows = {r.severity: r for r in conn.execute(select(alerts))}
    assert rows[ALERT].state == rows[WARNING].state == "resolved"
    assert findings_from_json(rows[WARNING].reasons) == [RMS_1]
    engine.dispose()


def test_the_message_leads_to_the_set_page_and_the_cover_follows(sqlite_url: str, tmp_path) -> None:  # noqa: ANN001
    engine = connect(sqlite_url)
    reason = "detector 3: median_snr = 1.0 <= 250"
    with engine.begin() as conn:
        alert_id = record_alert(conn, result("failed", (SNR_3,)), "v1")
    cover = tmp_path / "cover.png"
    cover.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    with Webhook().running() as hook:
        notifier = Notifier([hook.url], retries=1, public_url="https://qc.example.org/")
        assert notifier.cover_due(engine, "abc", cover) is False  # not notified yet
        notifier.deliver_now(engine, [alert_id])
        assert notifier.cover_due(engine, "abc", cover) is True
        assert notifier.cover_due(engine, "abc", cover) is False  # once per alert
        assert notifier.deliver_due(engine) == 1
    message, follow_up = hook.bodies
    assert reason in message["message"] and "https://qc.example.org/sets/abc" in message["message"]
    assert "https://qc.example.org/files/2010-05-12/abc/cover.png" in message["message"]
    assert [a["filename"] for a in follow_up["attachments"]] == ["cover.png"]
    assert "https://qc.example.org/sets/abc" in follow_up["message"]
    engine.dispose()
