"""One error path for every area of the dashboard: JSON ``{error, status, message}`` under /api, the styled error
page elsewhere; actions answer with the page too."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from flatqc.db import connect
from flatqc.settings import Settings
from flatqc.web.app import create_app


@pytest.fixture()
def client(tmp_path: Path, sqlite_url: str) -> FlaskClient:
    """A dashboard over an empty ledger, without Redis."""
    settings = Settings(db_url=sqlite_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    return create_app(settings, connect(sqlite_url), None).test_client()


def assert_error_page(answer, status: int) -> None:  # noqa: ANN001 - Flask test response
    assert answer.status_code == status and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert f'<p class="big muted">{status}</p>' in page and 'href="/alerts?state=open"' in page


@pytest.mark.parametrize(("page", "api", "status", "message"), [
    ("/?limit=many", "/api/nights?limit=many", 400, "limit must be a whole number or 'all'"),
    ("/nights/2099-01-01", "/api/nights/2099-01-01", 404, "no night 2099-01-01"),
    ("/sets/nothing", "/api/sets/nothing", 404, "no set nothing"),
    ("/trends?table=nope", "/api/trends?table=nope", 400, "table must be one of ['crires_flat', 'criresp_flat']"),
    ("/alerts?kind=loud", "/api/alerts?kind=loud", 400, "kind must be alert or warning"),
    ("/no-such-page", "/api/no-such-page", 404, None),
])
def test_errors_are_pages_and_json_under_api(client: FlaskClient, page: str, api: str, status: int,
                                             message: str | None) -> None:
    assert_error_page(client.get(page), status)
    answer = client.get(api)
    assert answer.status_code == status and answer.is_json
    body = answer.get_json()
    assert body["status"] == status and body["error"] in ("Bad Request", "Not Found")
    assert message is None or body["message"] == message


def test_failed_actions_answer_with_the_error_page(client: FlaskClient) -> None:
    assert_error_page(client.post("/alerts/1/ack", data={"by": "x"}), 400)  # no CSRF token
    with client.session_transaction() as session:
        session["csrf"] = token = "a-token"
    assert_error_page(client.post("/alerts/1/ack", data={"by": "x", "csrf_token": token}), 409)
    assert_error_page(client.post("/sets/nothing/reprocess", data={"csrf_token": token}), 503)  # no Redis
    assert_error_page(client.post("/queue/failed/a-job/retry", data={"csrf_token": token}), 503)
    assert_error_page(client.get("/alerts/1/ack"), 405)
    assert_error_page(client.post("/metrics", data={"csrf_token": token}), 405)


def test_queue_and_health_without_redis(client: FlaskClient) -> None:
    assert client.get("/queue").status_code == 200 and client.get("/api/queue").get_json()["reachable"] is False
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["redis"] == "not configured"  # no QC output folder
    assert client.get("/metrics").mimetype == "text/plain"


def test_open_alerts_of_a_night_count_rows_from_before_severities(tmp_path: Path, sqlite_url: str) -> None:
    """An open alert without severity (older rows) and one with ``alert`` are two alerts of the night."""
    from sqlalchemy import insert

    from flatqc.db import alerts
    from flatqc.web.queries import open_alert_counts

    engine = connect(sqlite_url)
    with engine.begin() as conn:
        conn.execute(insert(alerts), [
            {"set_id": "a", "night": "2010-05-12", "reasons": "[]", "severity": None},
            {"set_id": "b", "night": "2010-05-12", "reasons": "[]", "severity": "alert"},
            {"set_id": "c", "night": "2010-05-12", "reasons": "[]", "severity": "warning"},
        ])
        conn.execute(insert(alerts).values(set_id="d", night="2010-05-12", reasons="[]", severity="alert",
                                           state="acknowledged"))
    assert open_alert_counts(engine) == {("2010-05-12", "alert"): 2, ("2010-05-12", "warning"): 1}
