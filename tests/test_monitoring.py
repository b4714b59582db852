"""Self-monitoring: a real watcher round and a real worker job publish heartbeats that the web (another process's
view: Redis only) reads in /healthz and /metrics; /metrics still answers when the database is down."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from flatqc.compose import service_queue
from flatqc.db import connect, make_engine
from flatqc.queue import job_queue, redis_connection
from flatqc.settings import Settings, settings_env
from flatqc.web.app import create_app
from tests.service_helpers import service_settings
from watcher.core import Watcher

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(client: FlaskClient) -> Samples:
    """Every sample of ``/metrics``: ``{(name, sorted labels): value}``."""
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture()
def settings(tmp_path: Path, sqlite_url: str, redis_url: str) -> Settings:
    (tmp_path / "tree/qc").mkdir(parents=True)
    return service_settings(tmp_path / "tree", sqlite_url, redis_url)


def test_a_watcher_round_is_a_heartbeat_healthz_and_metrics_read(settings: Settings) -> None:
    engine, redis = connect(settings.db_url), redis_connection(str(settings.redis_url))
    client = create_app(settings, engine, service_queue(settings, redis)).test_client()
    before = client.get("/healthz")
    assert before.status_code == 503 and before.get_json()["watcher"].startswith("error: no heartbeat")
    assert ("flatqc_watcher_last_round_timestamp_seconds", ()) not in samples(client)
    started = time.time()
    Watcher(settings, engine, service_queue(settings, redis)).full_round()
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json()["watcher"] == "ok"
    ages = answer.get_json()["heartbeat_age_s"]["watcher"]
    assert set(ages) == {"round", "rescan"} and all(0 <= age < 5 for age in ages.values())
    values = samples(client)
    for name in ("flatqc_watcher_last_round_timestamp_seconds", "flatqc_watcher_last_rescan_timestamp_seconds"):
        assert started <= values[name, ()] <= time.time()
    time.sleep(0.1)
    strict = create_app(settings.model_copy(update={"watcher_stale_s": 0.05}), engine,
                        service_queue(settings, redis)).test_client()
    stale = strict.get("/healthz")
    assert stale.status_code == 503 and stale.get_json()["watcher"].startswith("error: no watcher round for")
    engine.dispose()


def test_a_worker_job_is_a_heartbeat_healthz_and_metrics_read(settings: Settings) -> None:
    redis = redis_connection(str(settings.redis_url))
    job_queue(settings, redis).enqueue("json.loads", "{}")
    env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": str(settings.redis_url)}
    started = time.time()
    subprocess.run([sys.executable, "-m", "flatqc", "worker", "--burst", "--name", "w1"], env=env, check=True,
                   timeout=120)
    engine = connect(settings.db_url)
    client = create_app(settings, engine, service_queue(settings, redis)).test_client()
    workers = client.get("/healthz").get_json()["heartbeat_age_s"]["workers"]
    assert list(workers) == ["w1"] and set(workers["w1"]) == {"seen", "job_started", "job_finished"}
    values = samples(client)
    job = {event: values["flatqc_worker_last_job_timestamp_seconds", (("event", event), ("worker", "w1"))]
           for event in ("started", "finished")}
    assert started <= job["started"] <= job["finished"] <= time.time()
    assert job["finished"] <= values["flatqc_worker_last_seen_timestamp_seconds", (("worker", "w1"),)]
    assert values["flatqc_workers", ()] == 0  # a burst worker leaves when the queue is empty
    engine.dispose()


def test_metrics_answer_when_the_database_is_down(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'no-such-folder/flatqc.db'}", qc_output=tmp_path,
                        run_dir=tmp_path / "run")
    engine = make_engine(settings.db_url)
    client = create_app(settings, engine, None).test_client()
    values = samples(client)
    assert values["flatqc_database_up", ()] == 0 and ("flatqc_sets_processed_total", ()) not in values
    assert values["flatqc_queue_reachable", ()] == 0
    assert 0 < values["flatqc_qc_output_free_bytes", ()] <= values["flatqc_qc_output_size_bytes", ()]
    assert client.get("/healthz").status_code == 503
    engine.dispose()
