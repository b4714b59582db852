"""The event-driven service end to end: real redis-server, real rq worker processes, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from flatqc.db import ALERT, alerts, crires_flat, files, job_events, severity_is
from flatqc.queue import job_queue, redis_connection
from flatqc.redis_server import EmbeddedRedis
from flatqc.up import Service
from qc.synth import load_manifest
from tests.conftest import ProcessedNight
from tests.service_helpers import (
    FINAL,
    Webhook,
    assert_same_qc1,
    children_of,
    deliver,
    finished_events,
    qc1_count,
    qc1_rows,
    service_settings,
    set_states,
    wait_for,
    wait_for_write,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture(scope="module")
def one_shot(processed_night: ProcessedNight) -> dict[tuple[str, int], dict]:
    """QC1 rows of the night computed by ``flatqc process`` (no queue), keyed by (set_id, detector)."""
    return qc1_rows(processed_night.db_url)


def tree_for(night: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(night / "reference", tree / "reference")
    return tree


def wait_final(db_url: str, set_ids: list[str], timeout_s: float = 240) -> None:
    wait_for(lambda: all(set_states(db_url).get(s) in FINAL for s in set_ids), timeout_s,
             f"sets {set_ids} to reach a final state (now {set_states(db_url)})")


def test_a_night_through_the_service(synth_night: Path, tmp_path: Path, redis_url: str, db_url: str,
                                     one_shot: dict) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    tree = tree_for(synth_night, tmp_path)
    with Webhook().running() as hook:
        service = Service(service_settings(tree, db_url, redis_url, alert_urls=[hook.url]), workers=2)
        service.start()
        try:
            deliver(synth_night, tree)
            wait_final(db_url, [s.set_id for s in manifest.sets])
            failing = {s.set_id for s in manifest.sets if s.expected_verdict == "failed"}
            wait_for(lambda: sum(not b.get("attachments") for b in hook.bodies) >= len(failing), 60,
                     "webhook alerts")
        finally:
            service.stop()

    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = {(r.set_id, r.detector): r._mapping for r in conn.execute(select(crires_flat))}
        alert_rows = list(conn.execute(select(alerts).where(severity_is(ALERT))))  # warnings are counted apart
        ledger = {r.path: r for r in conn.execute(select(files).order_by(files.c.id))}
        file_rows = conn.execute(select(func.count()).select_from(files)).scalar()
    engine.dispose()
    states = set_states(db_url)
    for entry in manifest.sets:
        expected_state = {"rejected": "rejected", "incomplete": "incomplete"}.get(entry.expected_verdict, "done")
        assert states[entry.set_id] == expected_state, entry.name
    assert_same_qc1(rows, one_shot)  # one row per set and detector, equal to the one-shot result
    # Alerts exactly for the failing sets, one webhook each, naming the set.
    assert sorted(a.set_id for a in alert_rows) == sorted(failing)
    assert all(a.notified_at is not None and a.state == "open" for a in alert_rows)
    notices = [b for b in hook.bodies if not b.get("attachments")]
    covers = [b for b in hook.bodies if b.get("attachments")]  # the cover sheet follows once pictures exist
    assert len(notices) == len(failing)
    assert {next(s for s in failing if s in b["title"]) for b in notices} == failing
    assert len(covers) <= len(failing) and all(any(s in b["title"] for s in failing) for b in covers)
    # Junk in the ledger with its reason; the duplicate delivery made no second version.
    for junk in manifest.junk:
        row = ledger[str(tree / junk.path)]
        assert row.state == junk.expected_state and junk.expected_reason in row.reason, junk
    assert file_rows == len(ledger)


def test_files_that_arrive_while_the_watcher_is_down_are_processed_once(
        synth_night: Path, tmp_path: Path, redis_url: str, sqlite_url: str) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    chosen = [s for s in manifest.sets if s.name in ("snr_pass", "single_flat")]
    tree = tree_for(synth_night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, redis_url), workers=1)
    service.start()
    try:
        service.stop_watcher()
        deliver(synth_night, tree, [s.name for s in chosen], junk=False)
        assert qc1_count(sqlite_url) == 0
        service.start_watcher()
        wait_final(sqlite_url, [s.set_id for s in chosen])
        service.stop_watcher()
        service.start_watcher()  # a second start-up rescan must not queue anything again
        assert service.watcher_caught_up.wait(60), "the restarted watcher did not finish its start-up round"
        wait_for(lambda: job_queue(service.settings, redis_connection(redis_url)).count == 0, 30,
                 "the queue to stay or become empty")
    finally:
        service.stop()
    assert finished_events(sqlite_url) == {s.set_id: 1 for s in chosen}
    assert qc1_count(sqlite_url) == 4 * len(chosen)


def test_a_worker_killed_mid_job_leaves_the_set_processed_exactly_once(
        synth_night: Path, tmp_path: Path, redis_url: str, sqlite_url: str) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    chosen = next(s for s in manifest.sets if s.name == "snr_pass")
    tree = tree_for(synth_night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, redis_url), workers=1)
    service.start()
    try:
        deliver(synth_night, tree, [chosen.name], junk=False)
        wait_for_write(sqlite_url, lambda: set_states(sqlite_url).get(chosen.set_id) == "running", 60,
                       "the job to start")
        worker = service.workers[0]
        for pid in children_of(worker.pid):  # the work-horse, then the worker itself
            os.kill(pid, signal.SIGKILL)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        assert set_states(sqlite_url)[chosen.set_id] == "running" and qc1_count(sqlite_url) == 0
        service.start_worker(0)
        wait_final(sqlite_url, [chosen.set_id])
    finally:
        service.stop()
    assert set_states(sqlite_url)[chosen.set_id] == "done"
    assert finished_events(sqlite_url) == {chosen.set_id: 1}
    assert qc1_count(sqlite_url) == 4
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        events = [(r.event, r.detail) for r in conn.execute(select(job_events).order_by(job_events.c.id))]
    errors = [detail for event, detail in events if event == "error"]
    assert all("rewritten" in e or "queued bytes" in e for e in errors), errors  # only the re-delivery's retries
    assert [e for e, _ in events].count("requeued") >= 1 and [e for e, _ in events].count("started") >= 2


def test_nothing_is_lost_when_redis_restarts_empty(synth_night: Path, tmp_path: Path,
                                                   redis_process: EmbeddedRedis, redis_url: str,
                                                   sqlite_url: str) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    chosen = [s for s in manifest.sets if s.name in ("snr_pass", "overexposed")]
    tree = tree_for(synth_night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, redis_url), workers=0)
    service.start()
    try:
        deliver(synth_night, tree, [s.name for s in chosen], junk=False)
        wait_for(lambda: all(set_states(sqlite_url).get(s.set_id) == "queued" for s in chosen), 60, "sets queued")
        redis_process.restart(lose_data=True)
        service.start_worker(0)
        wait_final(sqlite_url, [s.set_id for s in chosen])
    finally:
        service.stop()
    assert finished_events(sqlite_url) == {s.set_id: 1 for s in chosen}
    assert qc1_count(sqlite_url) == 4 * len(chosen)
