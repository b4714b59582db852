"""Helpers of the service tests: settings for a temporary tree, a webhook receiver, waiting on the ledger."""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url
from watchdog.events import (
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from flatqc.compose import service_queue
from flatqc.db import connect, crires_flat, job_events, sets
from flatqc.queue import job_queue, redis_connection
from flatqc.redis_server import free_port
from flatqc.settings import Settings, settings_env
from flatqc.synthetic_delivery import deliver_file, delivery_plan
from qc.records import QC1_NAMES
from qc.synth import SynthSet, load_manifest
from watcher.core import Watcher
from worker.run import WORKER_TTL_S, FlatqcWorker

FINAL = ("done", "rejected", "incomplete", "failed")


def service_settings(tree: Path, db_url: str, redis_url: str, **overrides: object) -> Settings:
    """Settings of a service on ``tree`` with short timings, so that tests take seconds."""
    values = dict(
        dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
        qc_output=tree / "qc", run_dir=tree / "run", db_url=db_url, redis_url=redis_url,
        file_settle_s=0.5, truncated_after_s=3.0, incomplete_timeout_s=8.0, rescan_interval_s=2.0,
        job_heartbeat_s=1, stale_job_s=6.0, job_retry_intervals=["1", "2"], alert_retries=2,
    )
    return Settings(**(values | overrides))


class Webhook:
    """A local HTTP receiver that records every JSON body POSTed to it (apprise ``json://`` target)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"

    @contextmanager
    def running(self) -> Iterator[Webhook]:
        self.thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()  # the listening socket too (else a ResourceWarning when collected)
            self.thread.join()


class BadChannel:
    """A local HTTP endpoint that fails an apprise ``json://`` delivery in one of three ways (``mode``): ``silent``
    accepts the connection and never answers, ``error`` answers 500, ``trickle`` answers 200 and then sends its body
    one byte every 0.2 s for a minute. ``requests`` counts the requests that reached it (silent: connections)."""

    def __init__(self, mode: str) -> None:
        self.mode, self.requests, self.stop = mode, 0, threading.Event()
        channel = self

        class Handler(BaseHTTPRequestHandler):
            def handle(self) -> None:
                if channel.mode != "silent":
                    super().handle()
                    return
                channel.requests += 1
                channel.stop.wait(60)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                channel.requests += 1
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if channel.mode == "error":
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "300")
                self.end_headers()
                for _ in range(300):
                    if channel.stop.wait(0.2):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()

            def log_message(self, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/{self.mode}"

    @contextmanager
    def running(self) -> Iterator[BadChannel]:
        self.thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


WRITES = {EVENT_TYPE_MODIFIED, EVENT_TYPE_CREATED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED}
"""inotify events of a write. Not open/close: the check itself opens and closes the database (read-write)."""


@contextmanager
def database_writes(db_url: str) -> Iterator[Callable[[float], bool]]:
    """``wait(timeout_s)``: returns True once the database at ``db_url`` was written to since the previous call
    (or since this began), False at the time-out. SQLite: a write to a file in the database's folder (a commit
    appends to the WAL there), through inotify. PostgreSQL: a NOTIFY from a statement trigger on ``sets`` that
    this installs for its duration."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        written = threading.Event()

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in WRITES:
                    written.set()

        def wait(timeout_s: float) -> bool:
            happened = written.wait(timeout_s)
            written.clear()
            return happened

        observer = Observer()
        observer.schedule(Handler(), str(Path(url.database).parent), recursive=False)
        observer.start()
        try:
            yield wait
        finally:
            observer.stop()
            observer.join()
        return
    import psycopg

    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as conn:
        conn.execute("CREATE FUNCTION test_notify_write() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN PERFORM pg_notify('test_writes', TG_TABLE_NAME); RETURN NULL; END $$")
        conn.execute("CREATE TRIGGER test_writes AFTER INSERT OR UPDATE OR DELETE ON sets "
                     "FOR EACH STATEMENT EXECUTE FUNCTION test_notify_write()")
        conn.execute("LISTEN test_writes")

        def wait(timeout_s: float) -> bool:
            return bool(list(conn.notifies(timeout=max(timeout_s, 0.0), stop_after=1)))

        try:
            yield wait
        finally:
            conn.execute("DROP TRIGGER test_writes ON sets")
            conn.execute("DROP FUNCTION test_notify_write()")


def wait_for_write(db_url: str, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Wait until ``condition()`` holds, checking it at once and again after every write to the database, never on
    a timer: a state that lasts only while a job runs is seen however short it is, and nothing spins meanwhile."""
    deadline = time.monotonic() + timeout_s
    with database_writes(db_url) as written:
        while not condition():
            if not written(deadline - time.monotonic()) and not condition():
                raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def children_of(pid: int) -> list[int]:
    """The processes ``pid``'s main thread started (Linux ``/proc``); none once ``pid`` is gone."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def finished_events(db_url: str) -> dict[str, int]:
    """How many times each set_id's job finished (``job_events``)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(sets.c.set_id, func.count()).join(job_events, job_events.c.version == sets.c.version)
                            .where(job_events.c.event == "finished").group_by(sets.c.set_id)).all()
    engine.dispose()
    return {set_id: count for set_id, count in rows}


def set_states(db_url: str) -> dict[str, str]:
    """State of the newest row of every set_id (pending rows that were superseded are left out)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(sets.c.set_id, sets.c.state).where(sets.c.state != "superseded")
                            .order_by(sets.c.id)).all()
    engine.dispose()
    return {r.set_id: r.state for r in rows}


def qc1_rows(db_url: str) -> dict[tuple[str, int], dict]:
    """The ``crires_flat`` rows, keyed by (set_id, detector)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = {(r.set_id, r.detector): dict(r._mapping) for r in conn.execute(select(crires_flat))}
    engine.dispose()
    return rows


def assert_same_qc1(rows: dict[tuple[str, int], dict], expected: dict[tuple[str, int], dict]) -> None:
    """One row per set and detector, each equal to the expected one (e.g. ``flatqc process``'s)."""
    assert set(rows) == set(expected)
    for key, row in rows.items():
        for name in (*QC1_NAMES, "certified", "verdict", "n_raw", "raw_type", "setting_key", "night"):
            assert row[name] == pytest.approx(expected[key][name]), (key, name)


def deliver(night: Path, tree: Path, set_names: list[str] | None = None, junk: bool = True) -> None:
    """Deliver the night's files into ``tree`` as archive tools do (:func:`flatqc.synthetic_delivery.delivery_plan`)."""
    for item in delivery_plan(night, set_names, junk):
        deliver_file(night / item.relative, tree / item.relative, item.mode, chunk_pause_s=0.15)


def qc1_count(db_url: str) -> int:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(crires_flat)).scalar()
    engine.dispose()
    return count


class Clock:
    """A monotonic clock the test moves by hand, so files settle without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def watcher_rig(night: Path, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
                **overrides: object) -> Iterator[dict]:
    """A tree (with the night's references), a watcher on a hand clock, and the job function configured for the
    same service (environment set, its cached settings cleared); SQLite in ``tmp_path`` unless ``db_url``."""
    from worker import jobs

    tree = tmp_path / "tree"
    shutil.copytree(night / "reference", tree / "reference")
    db_url = str(overrides.pop("db_url", f"sqlite:///{tmp_path / 'flatqc.db'}"))
    settings = service_settings(tree, db_url, redis_url, **overrides)
    engine = connect(settings.db_url)
    redis = redis_connection(redis_url)
    clock = Clock()
    for name, value in (settings_env(settings) | {"FLATQC_REDIS_URL": redis_url}).items():
        monkeypatch.setenv(name, value)
    queue = service_queue(settings, redis)
    jobs.prepare(settings.model_copy(update={"redis_url": redis_url}), queue)
    yield {"tree": tree, "night": night, "settings": settings, "engine": engine, "redis": redis,
           "watcher": Watcher(settings, engine, queue, clock=clock), "clock": clock,
           "queue": job_queue(settings, redis), "jobs": queue}
    jobs.release()
    engine.dispose()


class InProcessWorker(SimpleWorker, FlatqcWorker):
    """The service's worker running each job in this process (no interpreter to start, no fork): for tests where a
    worker process proves nothing. Job time-outs use a timer thread instead of SIGALRM, which pytest-timeout uses."""

    death_penalty_class = TimerDeathPenalty


def work_here(settings: Settings, redis_url: str) -> None:
    """Do every job of the service's queues here, in their order, as ``flatqc worker --burst`` would, with the job
    functions configured from ``settings`` (no scheduler: a retry scheduled for later stays scheduled)."""
    from worker import jobs

    connection = redis_connection(redis_url)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}  # rq installs its own
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (settings_env(settings) | {"FLATQC_REDIS_URL": redis_url}).items():
            patch.setenv(name, value)
        queue = service_queue(settings, connection)
        jobs.prepare(settings.model_copy(update={"redis_url": redis_url}), queue)
        try:
            InProcessWorker(queue.in_order(), connection=connection, serializer=JSONSerializer,
                            worker_ttl=WORKER_TTL_S, job_monitoring_interval=settings.job_heartbeat_s).work(burst=True)
        finally:
            jobs.release()
            for sig, handler in saved.items():
                signal.signal(sig, handler)
            connection.close()


def chosen(night: Path, name: str = "snr_pass") -> SynthSet:
    """The manifest entry of set ``name`` of a synthetic night."""
    return next(s for s in load_manifest(night / "manifest.json").sets if s.name == name)


def deliver_set(night: Path, tree: Path, entry: SynthSet) -> dict[str, Path]:
    """Copy a set's files from the night into the tree; returns where each landed."""
    placed = {}
    for relative in (entry.master, entry.bpm, *entry.raws):
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(night / relative, target)
        placed[relative] = target
    return placed
