"""Real time first: the order workers take the queues in (real-time QC, pictures, backfill QC), with a real Redis and
real workers; backfill and reprocessing on the backfill queue, kept there by the repair pass; backfill progress."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis
from rq import Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select
from sqlalchemy.engine import Engine

from flatqc.compose import WORKER_JOBS, service_queue
from flatqc.db import job_events, sets
from flatqc.queue import JobQueue, Lane, pictures_job_id
from flatqc.settings import settings_env
from flatqc.status import nights
from flatqc.up import Service
from flatqc.web.app import create_app
from qc.synth import load_manifest
from tests.job_recorder import HOLDERS, ORDER_KEY, RECORDERS, RELEASE_KEY
from tests.service_helpers import chosen, deliver_set, service_settings, wait_for, watcher_rig, work_here
from watcher.core import Watcher
from watcher.repair import repair_queue


def test_the_composed_job_functions_are_the_workers() -> None:
    """The dotted paths the entry points hand down name the job functions of :mod:`worker.jobs`."""
    from worker import jobs

    for path, function in ((WORKER_JOBS.qc, jobs.run_set_qc), (WORKER_JOBS.pictures, jobs.draw_set_pictures)):
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name) is function


@pytest.mark.service
def test_a_worker_takes_real_time_qc_then_pictures_then_backfill(redis_url: str, tmp_path: Path) -> None:
    """Backfill jobs queued first, then a picture job, then a real-time QC job: a real ``flatqc worker --burst``
    takes the real-time job first, the pictures next, the backfill last (in their own order)."""
    settings = service_settings(tmp_path, f"sqlite:///{tmp_path / 'flatqc.db'}", redis_url)
    connection = Redis.from_url(redis_url)
    queue = JobQueue(settings, connection, RECORDERS)
    for i in range(3):
        queue.enqueue_set(f"backfill{i}", f"job-backfill{i}", Lane.BACKFILL)
    queue.enqueue_pictures("pictures0")
    queue.enqueue_set("realtime0", "job-realtime0")
    assert [q.count for q in queue.in_order()] == [1, 1, 3]
    env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": redis_url}
    subprocess.run([sys.executable, "-m", "flatqc", "worker", "--burst"], env=env, check=True, timeout=120)
    taken = [v.decode() for v in connection.lrange(ORDER_KEY, 0, -1)]
    assert taken == ["realtime0", "pictures0", "backfill0", "backfill1", "backfill2"]


@pytest.mark.service
def test_a_reserved_worker_takes_tonights_set_while_the_other_works_on_backfill(
        redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``flatqc up`` with 2 workers (``FLATQC_REALTIME_WORKERS`` 1): one backfill job holds the other worker, more
    wait, and a picture job; a real-time job is started by the reserved worker before that backfill job ends, and the
    reserved worker, idle, takes neither the picture job nor a backfill job (the other worker does, in their order)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                   os.environ.get("PYTHONPATH")])))
    settings = service_settings(tmp_path, f"sqlite:///{tmp_path / 'flatqc.db'}", redis_url)
    connection = Redis.from_url(redis_url)
    service = Service(settings, workers=2)
    service.start()
    try:
        wait_for(lambda: len(Worker.all(connection=connection)) == 2, 60, "both workers")
        queues = {w.name: w.queue_names() for w in Worker.all(connection=connection)}
        (reserved,) = [name for name, names in queues.items() if names == ["flatqc"]]
        (other,) = [name for name, names in queues.items() if names == ["flatqc", "flatqc-pictures", "flatqc-backfill"]]
        backfill = JobQueue(settings, connection, HOLDERS)
        held = [backfill.enqueue_set(f"backfill{i}", f"job-backfill{i}", Lane.BACKFILL) for i in range(3)]
        wait_for(lambda: connection.llen(ORDER_KEY) == 1, 60, "the first backfill job to start")
        held.append(backfill.enqueue_pictures("pictures0"))
        tonight = JobQueue(settings, connection, RECORDERS).enqueue_set("realtime0", "job-realtime0")
        wait_for(lambda: tonight.get_status() == JobStatus.FINISHED, 60, "tonight's job, taken by a free worker")
        assert [v.decode() for v in connection.lrange(ORDER_KEY, 0, -1)] == ["backfill0", "realtime0"]
        assert held[0].get_status() == JobStatus.STARTED
        assert (backfill.pictures.count, backfill.backfill.count) == (1, 2)  # the reserved worker, idle, left them
        tonight.refresh()
        assert tonight.worker_name == reserved
        connection.rpush(RELEASE_KEY, *range(3))  # one per held backfill job
        wait_for(lambda: all(j.get_status() == JobStatus.FINISHED for j in held), 60, "the backfill")
        for job in held:
            job.refresh()
        assert {job.worker_name for job in held} == {other}
        assert [v.decode() for v in connection.lrange(ORDER_KEY, 2, -1)] == ["pictures0", "backfill1", "backfill2"]
        assert tonight.started_at is not None and held[0].ended_at is not None
        assert tonight.started_at < held[0].ended_at
    finally:
        service.stop()
        connection.close()


def started_order(engine: Engine, versions: dict[str, str]) -> list[str]:
    """set_ids in the order their QC jobs started (``job_events``)."""
    with engine.connect() as conn:
        rows = conn.execute(select(job_events.c.version).where(job_events.c.event == "started")
                            .order_by(job_events.c.id)).all()
    return [versions[r.version] for r in rows]


@pytest.mark.service
@pytest.mark.slow
def test_tonights_set_overtakes_a_waiting_backfill_even_after_redis_lost_it(
        synth_night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A backfill of the night's other sets waits; then tonight's set arrives. Redis loses every job; the repair
    pass puts each back on the queue of its lane. The worker does tonight's set and its pictures before any backfill
    set; status and the night page count the backfill; Reprocess queues on the backfill queue."""
    with watcher_rig(synth_night, tmp_path, redis_url, monkeypatch) as rig:
        settings, engine, queue = rig["settings"], rig["engine"], rig["jobs"]
        tonight = chosen(synth_night)
        older = [s for s in load_manifest(synth_night / "manifest.json").sets
                 if s.expected_verdict in ("passed", "failed", "not_assessable") and s.set_id != tonight.set_id]
        placed = [path for entry in older for path in deliver_set(synth_night, rig["tree"], entry).values()]
        Watcher(settings, engine, queue, lane=Lane.BACKFILL).record_paths(placed)
        deliver_set(synth_night, rig["tree"], tonight)
        rig["watcher"].rescan()
        rig["clock"].now += 100  # the new files settle
        rig["watcher"].tick()
        assert (queue.realtime.count, queue.backfill.count) == (1, len(older))
        with engine.connect() as conn:
            night_of = dict(conn.execute(select(sets.c.set_id, sets.c.night)).all())
        night = night_of[tonight.set_id]
        (night_status,) = [n for n in nights(engine) if n.night == night]
        backfill_of_night = sum(1 for s in older if night_of[s.set_id] == night)
        assert (night_status.backfill.sets, night_status.backfill.waiting) == (backfill_of_night, backfill_of_night)

        rig["redis"].flushall()  # Redis restarted empty
        lines = repair_queue(engine, settings, queue)
        assert len(lines) == 1 + len(older) and sum("(backfill queue)" in line for line in lines) == len(older)
        assert (queue.realtime.count, queue.backfill.count) == (1, len(older))

        work_here(settings, redis_url)
        with engine.connect() as conn:
            lanes = dict(conn.execute(select(sets.c.set_id, sets.c.lane).where(sets.c.state == "done")).all())
            versions = dict(conn.execute(select(sets.c.version, sets.c.set_id)).all())
        assert lanes == {tonight.set_id: "realtime"} | {s.set_id: "backfill" for s in older}
        order = started_order(engine, versions)
        assert order[0] == tonight.set_id and sorted(order[1:]) == sorted(s.set_id for s in older)
        tonight_version = next(v for v, s in versions.items() if s == tonight.set_id)
        pictures = queue.pictures.fetch_job(pictures_job_id(tonight_version))
        with engine.connect() as conn:
            backfill_ids = list(conn.execute(select(sets.c.job_id).where(sets.c.lane == Lane.BACKFILL)).scalars())
        backfill_jobs = Job.fetch_many(backfill_ids, connection=queue.connection, serializer=JSONSerializer)
        assert pictures is not None and all(j is not None for j in backfill_jobs)
        assert pictures.ended_at <= min(j.started_at for j in backfill_jobs)  # tonight's pictures came first

        client = create_app(settings, engine, queue).test_client()
        backfill = client.get(f"/api/nights/{night}").get_json()["backfill"]
        assert backfill == {"sets": backfill_of_night, "done": backfill_of_night, "waiting": 0,
                            "progress": f"backfill: {backfill_of_night} of {backfill_of_night} sets done, 0 waiting"}
        assert backfill["progress"] in client.get(f"/nights/{night}").get_data(as_text=True)
        with client.session_transaction() as session:
            session["csrf"] = token = "a-token"
        assert client.post(f"/sets/{tonight.set_id}/reprocess", data={"csrf_token": token}).status_code == 302
        assert (queue.realtime.count, queue.backfill.count) == (0, 1)
        with engine.connect() as conn:
            assert conn.execute(select(sets.c.lane).where(sets.c.version == tonight_version)).scalar() == "backfill"


def test_the_queues_are_named_after_the_service_queue(tmp_path: Path) -> None:
    settings = service_settings(tmp_path, f"sqlite:///{tmp_path / 'flatqc.db'}", None, queue_name="qc")
    names = [q.name for q in service_queue(settings, Redis()).in_order()]  # no connection is made
    assert names == ["qc", "qc-pictures", "qc-backfill"]
