"""Alert life cycle (open, same failure again, changed reasons, resolved, acknowledged) and delivery failures."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from flatqc.db import alerts, connect, findings_from_json
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle.alerts import acknowledge, record_alert
from flatqc.notify import Notifier
from flatqc.redis_server import free_port
from qc.records import Certification, Finding, FindingKind, SetResult
from tests.service_helpers import Webhook

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
    assert Notifier([dead], retries=3, backoff_s=0.0).send(engine, alert_id) is False
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    assert row.notify_attempts == 3 and "3 of 3" in row.notify_error and row.notified_at is None
    with Webhook().running() as hook:
        assert Notifier([hook.url], retries=3, backoff_s=0.0).send(engine, alert_id) is True
    assert len(hook.bodies) == 1 and "abc" in hook.bodies[0]["title"]
    assert "- detector 3: median_snr = 1.0 <= 250\n" in hook.bodies[0]["message"]  # worded from the stored data


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
        assert notifier.send_cover(engine, "abc", cover) is False  # not notified yet
        assert notifier.send(engine, alert_id) is True
        assert notifier.send_cover(engine, "abc", cover) is True
        assert notifier.send_cover(engine, "abc", cover) is False  # once per alert
    message, follow_up = hook.bodies
    assert reason in message["message"] and "https://qc.example.org/sets/abc" in message["message"]
    assert "https://qc.example.org/files/2010-05-12/abc/cover.png" in message["message"]
    assert [a["filename"] for a in follow_up["attachments"]] == ["cover.png"]
    assert "https://qc.example.org/sets/abc" in follow_up["message"]
    engine.dispose()
