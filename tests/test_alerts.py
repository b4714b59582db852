"""Alert life cycle (open, same failure again, changed reasons, resolved, acknowledged) and delivery failures."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from flatqc.db import alerts, connect
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle.alerts import acknowledge, record_alert
from flatqc.redis_server import free_port
from qc.records import Certification, SetResult
from tests.service_helpers import Webhook
from worker.alerts import send_alert


def result(verdict: str, reasons: tuple[str, ...] = ()) -> SetResult:
    return SetResult(
        set_id="abc", night="2010-05-12", profile="crires", setting_key="1090.400_25.000_Halogen", raw_type="FLAT",
        n_raw=3, dit=10.0, ndit=1, window_ny=512, window_starty=1, mjd_obs=55329.1, reference=None,
        reference_note="", detectors=[], certification=Certification(verdict, (), reasons),
    )


def test_alert_life_cycle(db_url: str) -> None:
    engine = connect(db_url)
    failing = result("failed", ("detector 2: median_snr = 100.0 <= 250",))
    with engine.begin() as conn:
        first = record_alert(conn, failing, "v1")
        assert first is not None
        assert record_alert(conn, failing, "v2") is None  # same failure again: nothing new to send
        changed = result("failed", ("detector 1: max_flux = 12000.0 ADU > 10000 ADU",))
        assert record_alert(conn, changed, "v3") == first  # new reasons: same alert, sent again
        acknowledge(conn, first, "qc-scientist", "lamp flicker")
        with pytest.raises(TransitionRefused, match="is acknowledged; not moved to acknowledged"):
            acknowledge(conn, first, "someone else")  # only open alerts can be acknowledged
        assert record_alert(conn, result("passed"), "v4") is None
        (row,) = conn.execute(select(alerts)).all()
    assert row.state == "resolved" and row.acknowledged_by == "qc-scientist" and row.resolved_at is not None
    assert json.loads(row.reasons) == ["detector 1: max_flux = 12000.0 ADU > 10000 ADU"]
    engine.dispose()


def test_delivery_is_retried_and_failure_recorded(sqlite_url: str) -> None:
    engine = connect(sqlite_url)
    with engine.begin() as conn:
        alert_id = record_alert(conn, result("failed", ("detector 3: median_snr = 1.0 <= 250",)), "v1")
    dead = f"json://127.0.0.1:{free_port()}/nobody"
    assert send_alert(engine, alert_id, [dead], retries=3, backoff_s=0.0) is False
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    assert row.notify_attempts == 3 and "3 of 3" in row.notify_error and row.notified_at is None
    with Webhook().running() as hook:
        assert send_alert(engine, alert_id, [hook.url], retries=3, backoff_s=0.0) is True
    assert len(hook.bodies) == 1 and "abc" in hook.bodies[0]["title"] and "median_snr" in hook.bodies[0]["message"]


def test_warnings_have_their_own_life_cycle_below_alerts(sqlite_url: str) -> None:
    from flatqc.db import ALERT, WARNING
    from flatqc.lifecycle.alerts import record_warning

    engine = connect(sqlite_url)
    failing = result("failed", ("detector 2: median_snr = 100.0 <= 250",))
    outside = ("detector 1: rms_master = 0.104 > 0.1 (trend limits 0.05 .. 0.1)",)
    with engine.begin() as conn:
        alert_id = record_alert(conn, failing, "v1")
        warning_id = record_warning(conn, failing, "v1", outside)
        assert warning_id not in (None, alert_id)
        assert record_warning(conn, failing, "v2", outside) is None  # the same warning again: nothing to send
        assert record_alert(conn, result("passed"), "v3") is None  # resolves the alert only
        assert record_warning(conn, result("passed"), "v3", ()) is None  # back inside the limits: resolved
        rows = {r.severity: r for r in conn.execute(select(alerts))}
    assert rows[ALERT].state == rows[WARNING].state == "resolved"
    assert json.loads(rows[WARNING].reasons) == list(outside)
    engine.dispose()


def test_the_message_leads_to_the_set_page_and_the_cover_follows(sqlite_url: str, tmp_path) -> None:  # noqa: ANN001
    from worker.alerts import send_cover

    engine = connect(sqlite_url)
    reason = "detector 3: median_snr = 1.0 <= 250"
    with engine.begin() as conn:
        alert_id = record_alert(conn, result("failed", (reason,)), "v1")
    cover = tmp_path / "cover.png"
    cover.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    with Webhook().running() as hook:
        assert send_cover(engine, "abc", cover, [hook.url], "https://qc.example.org") is False  # not notified yet
        assert send_alert(engine, alert_id, [hook.url], retries=1, public_url="https://qc.example.org/") is True
        assert send_cover(engine, "abc", cover, [hook.url], "https://qc.example.org") is True
        assert send_cover(engine, "abc", cover, [hook.url], "https://qc.example.org") is False  # once per alert
    message, follow_up = hook.bodies
    assert reason in message["message"] and "https://qc.example.org/sets/abc" in message["message"]
    assert "https://qc.example.org/files/2010-05-12/abc/cover.png" in message["message"]
    assert [a["filename"] for a in follow_up["attachments"]] == ["cover.png"]
    assert "https://qc.example.org/sets/abc" in follow_up["message"]
    engine.dispose()
