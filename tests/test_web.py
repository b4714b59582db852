"""The dashboard: JSON API, metrics, health, CSRF/token rules, escaping; pages in a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flatqc.compose import service_queue
from flatqc.db import connect
from flatqc.queue import job_queue, redis_connection
from flatqc.redis_server import EmbeddedRedis, free_port
from flatqc.settings import settings_env
from flatqc.web import start_web
from flatqc.web.app import create_app
from qc.synth import load_manifest
from tests.conftest import unavailable
from tests.service_helpers import service_settings
from watcher.core import Watcher

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
EVIL_NAME = "<img src=x onerror=alert(1)>.fits"
"""A file name that would run a script if a page did not escape it (no "/" possible in a name)."""

pytestmark = [pytest.mark.service, pytest.mark.slow]


def metric_values(client) -> dict[str, float]:  # noqa: ANN001 - Flask test client
    text = client.get("/metrics").get_data(as_text=True)
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples if not s.labels}


@pytest.fixture(scope="module")
def site(synth_night: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A night recorded by the watcher and processed by a real rq worker; metrics scraped before and after."""
    work = tmp_path_factory.mktemp("web")
    redis_server = EmbeddedRedis(work / "redis")
    if not redis_server.binary:
        unavailable("no redis-server")
    redis_server.start()
    tree = work / "tree"
    for sub in ("dfs_product", "dfs_raw", "reference"):
        shutil.copytree(synth_night / sub, tree / sub)
    (tree / "dfs_product/DARK/2010-05-12" / EVIL_NAME).write_text("not a FITS file")
    settings = service_settings(tree, f"sqlite:///{work / 'flatqc.db'}", redis_server.url)
    engine = connect(settings.db_url)
    redis = redis_connection(redis_server.url)
    queue = service_queue(settings, redis)
    client = create_app(settings, engine, queue).test_client()
    before = metric_values(client)
    Watcher(settings, engine, queue).record_paths(
        sorted(p for p in tree.rglob("*") if p.is_file() and "reference" not in p.parts))
    env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": redis_server.url}
    subprocess.run([sys.executable, "-m", "flatqc", "worker", "--burst"], env=env, check=True, timeout=300)
    yield {"settings": settings, "engine": engine, "redis": redis, "queue": queue, "client": client, "before": before,
           "manifest": load_manifest(synth_night / "manifest.json")}
    redis_server.stop()


def test_api_endpoints(site: dict) -> None:
    client, manifest = site["client"], site["manifest"]
    (night,) = client.get("/api/nights").get_json()
    assert night["night"] == "2010-05-12" and night["verdicts"]["failed"] == 2 and night["open_alerts"] == 2
    detail = client.get("/api/nights/2010-05-12").get_json()
    by_id = {s["set_id"]: s for s in detail["sets"]}
    for entry in manifest.sets:
        if entry.expected_verdict in ("passed", "failed", "not_assessable"):
            assert by_id[entry.set_id]["verdict"] == entry.expected_verdict
            assert len(by_id[entry.set_id]["qc1"]) == 4
    assert any(Path(f["path"]).name == EVIL_NAME for f in detail["files"])
    failing = next(s for s in manifest.sets if s.name == "snr_fail")
    one = client.get(f"/api/sets/{failing.set_id}").get_json()
    assert one["set"]["verdict"] == "failed" and any("median_snr" in r for r in one["reasons"])
    assert [e["event"] for e in one["history"]] == ["queued", "started", "finished"]
    assert client.get("/api/sets/doesnotexist").status_code == 404
    charts = client.get("/api/trends?days=all").get_json()
    assert {c["report"] for c in charts} == {"FLATSTAB", "FLAT_IRHa", "BADPIX"}
    flatstab = next(c for c in charts if c["key"] == "3218.600_25.000_Halogen" and c["parameter"] == "mean_flux")
    assert flatstab["limits"] == [75.0, 500.0] and len(flatstab["series"]) == 4
    assert len(client.get("/api/alerts?state=open&kind=alert").get_json()) == 2
    (warning,) = client.get("/api/alerts?state=open&kind=warning").get_json()  # trend limits: below an alert
    assert warning["severity"] == "warning" and all("trend limits" in r for r in warning["reasons"])
    assert night["open_warnings"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", warning["created_at"])  # ISO 8601
    assert client.get("/api/alerts?kind=loud").status_code == 400
    queue = client.get("/api/queue").get_json()
    assert queue["reachable"] and queue["depth"] == 0 and queue["failed_jobs"] == []
    health = client.get("/healthz")  # the night was recorded as by `flatqc backfill`: no watcher round, no heartbeat
    assert health.status_code == 503 and health.get_json()["watcher"].startswith("error: no heartbeat")
    assert {k: health.get_json()[k] for k in ("database", "qc_output", "redis")} == dict.fromkeys(
        ("database", "qc_output", "redis"), "ok")
    assert health.get_json()["process_restarts"] == {"worker": 0}


def test_metrics_change_as_sets_are_processed(site: dict) -> None:
    before, after = site["before"], metric_values(site["client"])
    done = sum(1 for s in site["manifest"].sets if s.expected_verdict in ("passed", "failed", "not_assessable"))
    assert before["flatqc_sets_processed_total"] == 0 and after["flatqc_sets_processed_total"] == done
    assert before["flatqc_alerts_open"] == 0 and after["flatqc_alerts_open"] == 2
    assert after["flatqc_sets_failed_certification_total"] == 2
    assert after["flatqc_files_rejected_total"] > before["flatqc_files_rejected_total"]
    assert after["flatqc_job_duration_seconds_count"] == done


def test_names_from_files_render_as_text(site: dict) -> None:
    page = site["client"].get("/nights/2010-05-12").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;.fits" in page and "<img src=x" not in page


def test_actions_need_csrf_and_off_loopback_a_token(site: dict) -> None:
    client = site["client"]
    assert client.post("/alerts/1/ack", data={"by": "x"}).status_code == 400
    exposed = create_app(site["settings"].model_copy(update={"web_host": "0.0.0.0", "web_token": "s3cret"}),
                         site["engine"], site["queue"]).test_client()
    exposed.get("/alerts")
    with exposed.session_transaction() as session:
        token = session["csrf"]
    assert exposed.post("/alerts/1/ack", data={"by": "x", "csrf_token": token}).status_code == 403


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    """Debian's Chromium driven by Playwright (no downloaded browser)."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        unavailable("Debian chromium is not installed (apt install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu",
                                                                      "--disable-background-networking"])
        yield browser
        browser.close()


def open_dashboard(chromium, settings, engine, queue) -> Iterator:  # noqa: ANN001
    """A page of a dashboard served on a free loopback port; fails the test if any script dialog opens."""
    port = free_port()
    server = start_web(settings, engine, queue, "127.0.0.1", port)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000}, base_url=f"http://127.0.0.1:{port}")
    page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
    yield page
    page.close()
    server.shutdown()


@pytest.fixture()
def browser_page(chromium, site: dict) -> Iterator:  # noqa: ANN001
    yield from open_dashboard(chromium, site["settings"], site["engine"], site["queue"])


def test_click_through_and_acknowledge_in_chromium(browser_page, site: dict) -> None:  # noqa: ANN001
    page = browser_page
    page.goto("/")
    page.screenshot(path=str(ARTIFACTS / "nights.png"), full_page=True)
    page.click("text=2010-05-12")
    assert page.locator("h1").inner_text() == "Night 2010-05-12"
    assert page.locator(f"text={EVIL_NAME}").count() == 1  # shown as text, never executed
    page.screenshot(path=str(ARTIFACTS / "night.png"), full_page=True)
    failing = next(s for s in site["manifest"].sets if s.name == "overexposed")
    page.click(f"h3 >> text=set {failing.set_id}")
    assert "failed" in page.locator("h1").inner_text()
    assert page.locator("img[alt=flat4]").evaluate("img => img.naturalWidth") > 1000
    page.screenshot(path=str(ARTIFACTS / "set.png"), full_page=True)
    page.goto("/alerts?state=open")
    row = page.locator("tr", has=page.locator(f"a:text('{failing.set_id}')"))
    row.locator("input[name=by]").fill("night astronomer")
    row.locator("input[name=comment]").fill("lamp too bright, flats repeated")
    row.locator("button:text('Acknowledge')").click()
    page.goto("/alerts?state=acknowledged")
    assert page.locator("td.alert-state").all_inner_texts() == ["acknowledged"]
    assert page.locator("text=night astronomer").count() == 1
    page.screenshot(path=str(ARTIFACTS / "alerts.png"), full_page=True)
    page.goto("/trends?days=all")
    assert page.locator("svg.trend").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "trends.png"), full_page=True)
    page.goto("/queue")
    page.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
    assert "workers alive" in page.content()



@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A dashboard over 2,000 generated sets (no Redis): the shape of years of nightly rows."""
    from bench.history import write_history
    from flatqc.settings import Settings

    work = tmp_path_factory.mktemp("history")
    settings = Settings(db_url=f"sqlite:///{work / 'flatqc.db'}", qc_output=work / "qc")
    engine = connect(settings.db_url)
    write_history(engine, 2000)
    return {"settings": settings, "engine": engine, "client": create_app(settings, engine, None).test_client()}


def test_trends_over_a_long_history(history: dict) -> None:
    import sqlite3

    key = "3218.600_25.000_Halogen"
    db = sqlite3.connect(history["engine"].url.database)
    newest = db.execute("SELECT max(mjd_obs) FROM crires_flat").fetchone()[0]
    expected_rows = db.execute("SELECT count(*) FROM crires_flat WHERE setting_key = ? AND mjd_obs >= ?",
                               (key, newest - 90)).fetchone()[0]
    assert expected_rows > 0
    client = history["client"]
    charts = client.get(f"/api/trends?key={key}").get_json()
    assert {(c["report"], c["parameter"]) for c in charts} == {
        ("FLATSTAB", "mean_flux"), ("FLATSTAB", "rms_master"), ("FLAT_IRHa", "mean_flux"), ("BADPIX", "badpix")}
    flux = next(c for c in charts if c["report"] == "FLATSTAB" and c["parameter"] == "mean_flux")
    assert sum(len(s["mjd_obs"]) for s in flux["series"]) == expected_rows
    assert min(min(s["mjd_obs"]) for s in flux["series"]) >= newest - 90
    assert {score for s in flux["series"] for score in s["scores"]} == {None}  # the generated rows are not scored
    page = client.get(f"/trends?days=all&key={key}").get_data(as_text=True)
    # 400 rows a detector: one dotted path per score, all grey; limits in each of 4 panels of 3 charts
    assert 'class="points score-none"' in page
    assert 'class="points score-ok"' not in page and 'class="points score-fail"' not in page
    assert page.count('class="limit"') == 2 * 4 * 3
    assert client.get("/trends?days=all").status_code == 200
    assert client.get("/trends?days=soon").status_code == 400
    nights = client.get("/").get_data(as_text=True)
    listed = nights[nights.index("<h1>Nights</h1>"):]  # below the board, whose rows link their nights too
    assert "newest 100 nights" in listed and listed.count("/nights/") == 100


@pytest.fixture()
def history_page(chromium, history: dict) -> Iterator:  # noqa: ANN001
    yield from open_dashboard(chromium, history["settings"], history["engine"], None)


def test_years_of_trends_in_chromium(history_page) -> None:  # noqa: ANN001
    page = history_page
    page.goto("/trends?days=all")
    page.select_option("select[name=key]", "1090.400_25.000_Halogen")  # submits the form
    page.wait_for_url("**key=1090.400_25.000_Halogen**")
    assert page.locator("svg.trend").count() == 4 and page.locator("polygon.alien").count() > 0
    page.screenshot(path=str(ARTIFACTS / "trends_history.png"), full_page=True)


def test_failed_job_is_listed_and_retried(site: dict) -> None:
    from tests.service_helpers import InProcessWorker

    queue = job_queue(site["settings"], site["redis"])
    job = queue.enqueue("json.loads", "{not json", job_id="broken-job")  # fails in a real worker
    InProcessWorker([queue], connection=site["redis"], serializer=queue.serializer).work(burst=True)
    client = site["client"]
    failed = client.get("/api/queue").get_json()["failed_jobs"]
    assert [(j["id"], j["function"]) for j in failed] == [("broken-job", "json.loads")]
    assert "JSONDecodeError" in failed[0]["error"]
    page = client.get("/queue").get_data(as_text=True)
    assert "broken-job" in page and "Retry" in page
    with client.session_transaction() as session:
        token = session["csrf"]
    assert client.post("/queue/failed/broken-job/retry", data={"csrf_token": token}).status_code == 302
    status = client.get("/api/queue").get_json()
    assert status["failed_jobs"] == [] and [j["id"] for j in status["waiting_jobs"]] == ["broken-job"]
    job.delete()


def test_healthz_reports_an_unreachable_redis(site: dict) -> None:
    dead = redis_connection(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    client = create_app(site["settings"], site["engine"], service_queue(site["settings"], dead)).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.get_json()["database"] == "ok" and answer.get_json()["redis"].startswith("error")
    assert client.get("/api/queue").get_json()["reachable"] is False


def test_flatqc_web_serves_the_dashboard(site: dict) -> None:
    import time
    import urllib.request

    port = free_port()
    env = os.environ | settings_env(site["settings"]) | {"FLATQC_WEB_PORT": str(port), "FLATQC_REDIS_URL": ""}
    server = subprocess.Popen([sys.executable, "-m", "flatqc", "web"], env=env)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nights", timeout=5) as answer:
                    assert [n["night"] for n in json.loads(answer.read())] == ["2010-05-12"]
                    break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("flatqc web did not answer")
    finally:
        server.terminate()
        server.wait(10)


def test_night_page_lists_failed_sets_first_in_chromium(browser_page, site: dict) -> None:  # noqa: ANN001
    from flatqc.web.queries import ATTENTION

    page = browser_page
    page.goto("/nights/2010-05-12")
    order = page.locator("section.setrow").evaluate_all("rows => rows.map(r => r.dataset.attention)")
    assert order[:2] == ["failed", "failed"] and order == sorted(order, key=ATTENTION.index)
    first = page.locator("section.setrow").first
    assert "observed 2010-05-13" in first.inner_text() and "CRIRES" in first.inner_text()
    assert first.locator("a.tile img").evaluate("img => img.naturalWidth") > 1000  # the cover's verdict corner
    assert page.locator("a[rel=prev], a[rel=next]").count() == 0  # the only night
    page.screenshot(path=str(ARTIFACTS / "night_failed_first.png"), full_page=True)


def test_acknowledge_and_reprocess_from_the_set_page_in_chromium(browser_page, site: dict) -> None:  # noqa: ANN001
    failing = next(s for s in site["manifest"].sets if s.name == "snr_fail")
    page = browser_page
    page.goto(f"/sets/{failing.set_id}")
    verdict = page.locator("#verdict")
    assert "median_snr" in verdict.inner_text() and "trend limits" in verdict.inner_text()
    assert page.locator("table.qc1 td.bad").count() == 4  # median_snr on every detector
    assert page.locator("table.qc1 td.warn").count() >= 1  # rms_master above its trend limit
    box = verdict.locator(".alert-box", has_text="alert #")
    assert box.locator("button:text('Acknowledge')").bounding_box()["y"] < 1000  # above the fold
    assert verdict.locator("a:text('Trend of this setting')").count() == 1
    page.screenshot(path=str(ARTIFACTS / "set_failed.png"))
    verdict.locator("a:text('flat4')").first.click()
    assert page.url.endswith("#flat4")
    assert page.locator("a:has(img[alt=flat4])").get_attribute("href").endswith("/flat4.png")  # full size
    box.locator("input[name=by]").fill("qc scientist")
    box.locator("button:text('Acknowledge')").click()
    assert page.url.endswith(f"/sets/{failing.set_id}")
    assert "acknowledged by qc scientist" in page.locator(".flash").inner_text()
    assert "acknowledged" in page.locator("#verdict .alert-box", has_text="alert #").inner_text()
    page.locator("button:text('Reprocess')").click()
    assert "queued for reprocessing" in page.locator(".flash").inner_text()
    passing = next(s for s in site["manifest"].sets if s.expected_verdict == "passed")
    page.goto(f"/sets/{passing.set_id}")
    assert page.locator("table.qc1 td.bad").count() == 0 and page.locator("#verdict .alert-box").count() == 0
    page.screenshot(path=str(ARTIFACTS / "set_passed.png"))


def test_missing_pages_are_styled_in_chromium(browser_page) -> None:  # noqa: ANN001
    page = browser_page
    answer = page.goto("/sets/no-such-set")
    assert answer.status == 404
    assert page.locator("h1").inner_text() == "Not Found" and "no set no-such-set" in page.content()
    page.click("main >> text=All nights")
    assert page.locator("h1").all_inner_texts() == ["Board", "Nights"]


def test_trend_points_open_their_set_and_nights_link_their_neighbours_in_chromium(history_page) -> None:  # noqa: ANN001
    page = history_page
    page.goto("/trends?key=1090.400_25.000_Halogen&days=30")
    svg = page.locator("svg.trend").first
    assert "observation date [UTC]" in svg.inner_html() and "mean_flux [ADU/s]" in svg.inner_html()
    assert svg.locator("text.ytick").count() >= 3
    point = svg.locator("a:has(circle.point)").last  # drawn last: on top of the points it overlaps
    target = point.get_attribute("href")
    point.click()
    page.wait_for_url(f"**{target}")
    assert page.locator("h1").inner_text().startswith("Set h")
    page.click("a[rel=prev]")  # previous set of the setting
    assert page.url != target and page.locator("h1").inner_text().startswith("Set h")
    page.click("p >> a[href^='/nights/']")
    night = page.locator("h1").inner_text().removeprefix("Night ")
    page.click("a[rel=next]")
    assert page.locator("h1").inner_text() > f"Night {night}"
    page.click("a[rel=prev]")
    assert page.locator("h1").inner_text() == f"Night {night}"
