"""Alert life cycle (open, same failure again, changed reasons, resolved, acknowledged) and delivery failures."""

from __future__ import annotations

import json

from sqlalchemy import select

from flatqc.db import alerts, connect
from flatqc.lifecycle import acknowledge, record_alert
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
        assert acknowledge(conn, first, "qc-scientist", "lamp flicker")
        assert not acknowledge(conn, first, "someone else")  # only open alerts can be acknowledged
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
