"""Issue 20: the repair pass ends stalled work-horses, isolates each item, and caps its automatic re-queues.

Real redis-server, real ``flatqc worker`` processes and real signals; Redis states made by hand are those a Redis
under memory pressure leaves (a job hash of the wrong type, an execution listed whose hash is gone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from rq import Worker
from rq.job import JobStatus
from sqlalchemy import select

from flatqc.cli import main
from flatqc.db import job_events
from flatqc.faults import STALL_HOOK
from flatqc.queue import fetch_job
from flatqc.readiness import RateLimitedLog
from flatqc.web.app import create_app
from tests.service_helpers import chosen, deliver_set, wait_for, watcher_rig
from tests.test_faults_watcher import (
    child_env,
    flatqc,
    rounds,
    set_rows,
    stalled_child,
    state_of,
)
from watcher import repair
from watcher.repair import repair_queue

pytestmark = pytest.mark.service

STALLED_S = 3.0


@pytest.fixture()
def rig(synth_night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    monkeypatch.setattr(repair, "errors", RateLimitedLog(logging.getLogger(repair.__name__), repair.ERROR_LOG_S))
    with watcher_rig(synth_night, tmp_path, redis_url, monkeypatch, stale_job_s=20.0, stalled_job_s=STALLED_S,
                     max_auto_requeues=2) as made:
        yield made


def queued_sets(rig: dict, *names: str) -> list:
    """Deliver the sets ``names`` of the night and let the watcher queue them; their rows."""
    entries = [chosen(rig["night"], name) for name in names]
    for entry in entries:
        deliver_set(rig["night"], rig["tree"], entry)
    rounds(rig, 2)
    rows = [set_rows(rig["engine"], e.set_id)[0] for e in entries]
    assert [r.state for r in rows] == ["queued"] * len(names)
    return rows


def events(rig: dict, version: str) -> list[tuple[str, str]]:
    """``(event, detail)`` of the set version's job history, oldest first."""
    with rig["engine"].connect() as conn:
        return [(r.event, r.detail or "") for r in conn.execute(
            select(job_events.c.event, job_events.c.detail).where(job_events.c.version == version)
            .order_by(job_events.c.id))]


def dashboard(rig: dict) -> FlaskClient:
    client = create_app(rig["settings"], rig["engine"], rig["jobs"]).test_client()
    with client.session_transaction() as session:
        session["csrf"] = "a-token"
    return client


# -- 1. a stalled work-horse ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_stalled_work_horse_is_ended_and_its_set_done_by_another_worker(rig: dict, redis_url: str,
                                                                          tmp_path: Path) -> None:
    """The work-horse of a ``flatqc worker`` stops itself (SIGSTOP) once its job started the set; its worker lives
    on and keeps the job's heartbeat fresh. The repair pass finds no progress for ``stalled_job_s``, has the worker
    end the horse, queues the set again, and a second worker does it. /queue lists the stall."""
    (row,) = queued_sets(rig, "snr_pass")
    stalling = flatqc("worker", "--burst", "--name", "stalling",
                      env=child_env(rig["settings"], redis_url) | {STALL_HOOK: "job-started"},
                      log=tmp_path / "stalling.log")
    second = None
    try:
        horse = stalled_child(stalling, 60)
        second = flatqc("worker", "--name", "second", env=child_env(rig["settings"], redis_url),
                        log=tmp_path / "second.log")
        assert state_of(stalling.pid) in ("S", "R")  # the worker itself runs: only its horse stopped
        stalled_job = set_rows(rig["engine"], row.set_id)[0].job_id
        wait_for(lambda: "second" in {w.name for w in Worker.all(connection=rig["redis"])}, 60,
                 "the second worker to listen", interval_s=0.2)
        time.sleep(STALLED_S + 1.0)  # the stall, longer than the limit
        assert fetch_job(rig["redis"], stalled_job).get_status() == JobStatus.STARTED  # heartbeat still fresh
        rounds(rig, 1)
        assert [e for e, _ in events(rig, row.version)].count("stalled") == 1
        wait_for(lambda: state_of(horse) in (None, "Z"), 20, "the stalled work-horse to be ended", interval_s=0.1)

        def done() -> bool:  # should the stalling worker take the set again, its horse stalls again: repaired again
            rounds(rig, 1)
            return set_rows(rig["engine"], row.set_id)[0].state == "done"

        wait_for(done, 90, "the set to be done by the second worker", interval_s=1.0)
        assert fetch_job(rig["redis"], stalled_job).get_status() == JobStatus.STOPPED  # by its worker, on request
        workers = {w.name: w for w in Worker.all(connection=rig["redis"])}
        assert workers["second"].successful_job_count >= 1
        assert "stalling" not in workers or workers["stalling"].successful_job_count == 0
    finally:
        for process in (stalling, second):
            if process is not None:
                process.kill()
                process.wait()
    (finished,) = set_rows(rig["engine"], row.set_id)
    assert finished.job_id != stalled_job
    history = events(rig, row.version)
    assert [e for e, _ in history].count("finished") == 1
    stalled = [detail for event, detail in history if event == "stalled"]
    assert stalled[0].startswith("stalled: no progress for ") and "work-horse ended" in stalled[0], history
    assert "(automatic re-queue 1 of 2)" in stalled[0]
    page = dashboard(rig).get("/queue").get_data(as_text=True)
    assert "Stalled jobs, last 24 h" in page and stalled[0] in page and row.set_id in page


# -- 2. one bad item does not stop the pass ------------------------------------------------------------------------
def test_a_job_that_cannot_be_read_or_deleted_does_not_stop_the_repair_pass(
        rig: dict, caplog: pytest.LogCaptureFixture) -> None:
    """Three queued sets after a Redis out-of-memory episode: one job hash replaced by a value of another type (rq
    cannot read it), one job stale with an execution listed whose hash was evicted (rq's delete raises "Execution
    ... not found"), one job gone. One pass repairs the two it can and logs one line naming the third."""
    unreadable, half_evicted, gone = queued_sets(rig, "snr_pass", "snr_fail", "overexposed")
    redis = rig["redis"]
    key = fetch_job(redis, unreadable.job_id).key
    redis.delete(key)
    redis.set(key, "evicted and rewritten")
    job = fetch_job(redis, half_evicted.job_id)
    redis.lrem(rig["queue"].key, 1, job.id)
    job.set_status(JobStatus.STARTED)
    job.heartbeat(datetime.now(UTC) - timedelta(seconds=600), 600)
    redis.zadd(job.execution_registry.key, {"evicted": time.time() + 600})
    with pytest.raises(ValueError, match="Execution evicted not found"):
        job.execution_registry.get_executions()  # what job.delete() calls
    fetch_job(redis, gone.job_id).delete()
    with caplog.at_level(logging.INFO, logger="watcher.repair"):
        lines = repair_queue(rig["engine"], rig["settings"], rig["jobs"])
        repair_queue(rig["engine"], rig["settings"], rig["jobs"])  # the bad one again: not logged again
    assert sorted(lines) == sorted([
        f"set {half_evicted.set_id} queued again: worker stopped sending heartbeats (killed?)",
        f"set {gone.set_id} queued again: job missing from Redis (restart?)"])
    assert fetch_job(redis, half_evicted.job_id).get_status() == JobStatus.QUEUED  # deleted, then queued anew
    assert [e for e, _ in events(rig, unreadable.version)] == ["queued"]
    (logged,) = [r.getMessage() for r in caplog.records if "skipped this pass" in r.getMessage()]
    assert f"set {unreadable.set_id}" in logged and "WRONGTYPE" in logged, logged


# -- 3. a cap on automatic re-queues -------------------------------------------------------------------------------
def test_automatic_requeues_are_capped_and_the_set_waits_for_retry(rig: dict) -> None:
    """A set whose job keeps vanishing from Redis is queued again twice (``max_auto_requeues``), each counted in its
    history; the third time it is failed, saying so, listed on /queue and by ``flatqc status``; Retry there queues
    it again with a fresh count."""
    (row,) = queued_sets(rig, "snr_pass")
    for _ in range(4):
        job = fetch_job(rig["redis"], set_rows(rig["engine"], row.set_id)[0].job_id)
        if job is not None:
            job.delete()  # Redis lost it again
        repair_queue(rig["engine"], rig["settings"], rig["jobs"])
    (failed,) = set_rows(rig["engine"], row.set_id)
    why = "job missing from Redis (restart?)"
    assert (failed.state, failed.transient, failed.reason) == ("failed", False,
                                                               f"gave up after 2 automatic re-queues: {why}")
    assert events(rig, row.version) == [
        ("queued", "set complete"), ("requeued", f"{why} (automatic re-queue 1 of 2)"),
        ("requeued", f"{why} (automatic re-queue 2 of 2)"), ("gave up", failed.reason)]
    status = CliRunner().invoke(main, ["status"])
    assert failed.reason in status.output and "Retry on /queue" in status.output, status.output
    client = dashboard(rig)
    page = client.get("/queue").get_data(as_text=True)
    assert failed.reason in page and f"/queue/sets/{row.version}/retry" in page
    assert client.post(f"/queue/sets/{row.version}/retry", data={"csrf_token": "a-token"}).status_code == 302
    (again,) = set_rows(rig["engine"], row.set_id)
    assert (again.state, again.auto_requeues) == ("queued", 0)
    assert rig["queue"].get_job_ids() == [again.job_id]
    assert failed.reason not in client.get("/queue").get_data(as_text=True)
