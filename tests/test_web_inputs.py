"""The dashboard with every outcome: NULL QC1 values, rejected sets, odd names, things that do not exist; JSON errors
under /api; acknowledge's ``next`` stays on the site; one session key for every web process."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from flatqc.cli import main
from flatqc.db import alerts, connect, crires_flat
from flatqc.settings import Settings
from flatqc.web.app import create_app, same_site_path
from flatqc.web.secret import SECRET_FILE, web_secret_key
from qc.numbers import format_number
from qc.sets import set_id_for
from tests.tiny_set import NIGHT, healthy_set, write_files


@pytest.fixture()
def processed(tmp_path: Path, db_url: str) -> dict:
    """One tiny set processed by ``flatqc process`` into ``db_url`` (SQLite and PostgreSQL)."""
    files = healthy_set(np.random.default_rng(5))
    write_files(files, tmp_path)
    result = CliRunner().invoke(main, ["process", str(tmp_path / "dfs_product"), "--db", db_url,
                                       "--out", str(tmp_path / "qc"), "--raw", str(tmp_path / "raw"),
                                       "--reference", str(tmp_path / "reference"), "--json"])
    assert result.exit_code == 0, result.output
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    engine = connect(db_url)
    set_id = set_id_for([f.name for f in files if f.kind == "raw"])
    return {"settings": settings, "engine": engine, "set_id": set_id,
            "client": create_app(settings, engine, None).test_client()}


def test_null_and_nan_qc1_values_render_as_a_dash_and_null(processed: dict) -> None:
    """Rows written before validation existed: rms_master NULL made /nights/<date> answer 500."""
    with processed["engine"].begin() as conn:
        conn.execute(update(crires_flat).values(rms_master=None, badpix=None, mean_flux=float("nan")))
    client = processed["client"]
    night = client.get(f"/nights/{NIGHT}")
    assert night.status_code == 200
    assert night.get_data(as_text=True).count("<td>—</td>") >= 3 * 4  # three NULL columns on four detectors
    page = client.get(f"/sets/{processed['set_id']}").get_data(as_text=True)
    assert ">None<" not in page and ">nan<" not in page
    answer = client.get(f"/api/nights/{NIGHT}")
    body = json.loads(answer.get_data(as_text=True), parse_constant=lambda token: pytest.fail(token))
    rows = body["sets"][0]["qc1"]
    assert [(r["rms_master"], r["badpix"], r["mean_flux"]) for r in rows] == [(None, None, None)] * 4


def test_pages_write_qc1_values_with_the_one_rule(processed: dict) -> None:
    """Night and set pages both show a QC1 value as :func:`qc.numbers.format_number` writes it (5 significant
    digits; the night page had a precision per column before)."""
    with processed["engine"].begin() as conn:
        conn.execute(update(crires_flat).values(mean_flux=432.12345, rms_master=0.0123456))
    client = processed["client"]
    night = client.get(f"/nights/{NIGHT}").get_data(as_text=True)
    page = client.get(f"/sets/{processed['set_id']}").get_data(as_text=True)
    for shown in (format_number(432.12345), format_number(0.0123456)):
        assert f">{shown}</td>" in night and f">{shown}</td>" in page
    assert format_number(0.0123456) == "0.012346"


def test_what_does_not_exist_is_404_and_json_under_api(processed: dict) -> None:
    client = processed["client"]
    assert client.get(f"/nights/{NIGHT}").status_code == 200
    assert client.get("/nights/2099-01-01").status_code == 404
    assert client.get("/sets/<b>odd</b>").status_code == 404
    for path in ("/api/nights/2099-01-01", "/api/sets/nothing-here", "/api/no-such-page"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.is_json, path
        assert answer.get_json()["status"] == 404 and answer.get_json()["error"] == "Not Found"
    assert "no night 2099-01-01" in client.get("/api/nights/2099-01-01").get_json()["message"]
    bad = client.get("/api/trends?days=soon")
    assert bad.status_code == 400 and bad.get_json()["message"] == "days must be a whole number or 'all'"


@pytest.mark.parametrize(("target", "allowed"), [
    ("/alerts?state=open", True), ("/nights/2010-05-12", True),
    ("https://evil.example/", False), ("//evil.example/", False), ("/\\evil.example/", False),
    ("/\t/evil.example/", False), ("javascript:alert(1)", False), ("", False), (None, False),
])
def test_only_same_site_paths_are_followed(target: str | None, allowed: bool) -> None:
    assert same_site_path(target) == (target if allowed else None)


def test_acknowledge_redirects_only_within_the_site(processed: dict) -> None:
    with processed["engine"].begin() as conn:
        ids = [conn.execute(alerts.insert().values(set_id=processed["set_id"], version=f"v{i}", night=NIGHT,
                                                   state="open", reasons="[]")).inserted_primary_key[0]
               for i in range(2)]
    client = processed["client"]
    client.get("/alerts")
    with client.session_transaction() as session:
        token = session["csrf"]
    outside = client.post(f"/alerts/{ids[0]}/ack", data={"by": "x", "csrf_token": token,
                                                         "next": "https://evil.example/phish"})
    assert outside.status_code == 302 and outside.headers["Location"] == "/alerts"
    inside = client.post(f"/alerts/{ids[1]}/ack", data={"by": "x", "csrf_token": token, "next": "/alerts?state=open"})
    assert inside.status_code == 302 and inside.headers["Location"] == "/alerts?state=open"


def test_a_form_from_one_web_process_is_accepted_by_another(processed: dict) -> None:
    """Two apps (two web processes, or one restarted) on the same run folder share the session key."""
    settings, engine = processed["settings"], processed["engine"]
    first = create_app(settings, engine, None).test_client()
    with first.session_transaction() as session:  # a session cookie signed by the first app
        session["csrf"] = token = "a-token-the-first-process-put-in-a-form"
    cookie = first.get_cookie("session")
    second = create_app(settings, engine, None).test_client()
    second.set_cookie(cookie.key, cookie.value)
    answer = second.post("/alerts/999/ack", data={"by": "x", "csrf_token": token})
    assert answer.status_code == 409  # past the CSRF check: the alert does not exist, so it is not open
    path = settings.run_dir / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_secret_key_from_setting_or_a_file_created_once(tmp_path: Path) -> None:
    assert web_secret_key("from-settings", tmp_path / "unused") == "from-settings"
    assert not (tmp_path / "unused").exists()
    keys: list[str] = []
    threads = [threading.Thread(target=lambda: keys.append(web_secret_key(None, tmp_path / "run")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1 and len(keys[0]) == 64
    assert sorted(os.listdir(tmp_path / "run")) == [SECRET_FILE]  # no temporary file left behind
    (tmp_path / "run" / SECRET_FILE).chmod(0o644)
    with pytest.raises(PermissionError, match="accessible to other users"):
        web_secret_key(None, tmp_path / "run")


def test_an_unexpected_error_under_api_is_json(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    broken = create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'x.db'}")  # every query fails
    client = create_app(Settings(run_dir=tmp_path / "run"), broken, None).test_client()
    answer = client.get("/api/nights")
    assert answer.status_code == 500 and answer.get_json()["error"] == "Internal Server Error"
