"""Schema migrations (Alembic): the revisions build what ``flatqc.db`` describes, and a database made before
migrations existed (by flatqc 0.1.0, or older and missing columns) is upgraded on start with its rows kept.

Each test runs on SQLite (a file) and PostgreSQL (a schema of its own, dropped afterwards).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Column, Engine, MetaData, String, inspect, select, text

from flatqc import migrations
from flatqc.cli import main
from flatqc.db import create_schema, make_engine, metadata

WHEN = datetime(2010, 5, 12, 23, 59, 58)
MAX_FLUX = "detector 2: max_flux = 12000.0 ADU > 10000 ADU"
NOT_ASSESSABLE = "S/N not assessable (N = 1 < 3)"
MEAN_FLUX = "detector 1: mean_flux = 510 ADU/s > 500 ADU/s (trend limits 75 .. 500)"
"""Sentences as flatqc 0.1.0 worded them (a reason, a note, a trend-limit warning)."""
RELEASE_ROWS: dict[str, list[dict[str, Any]]] = {
    "files": [{"id": 1, "path": "/data/CRIRES.2010-05-12T23:00:00.000.fits", "size": 4, "mtime": 1.5,
               "sha256": "a" * 64, "kind": "flat", "profile": "crires", "arcfile": "CRIRES.2010-05-12T23:00:00.000",
               "set_id": "s1", "night": "2010-05-12", "state": "recorded", "reason": None, "first_seen": WHEN,
               "last_seen": WHEN, "current_since": None}],
    "sets": [{"id": 1, "set_id": "s1", "version": "v" * 64, "night": "2010-05-12", "profile": "crires",
              "setting_key": "3218.600_25.000_Halogen", "raw_type": "FLAT", "n_raw": 1, "members": ["a" * 64],
              "state": "done", "reason": None, "verdict": "failed", "job_id": "qc-1", "attempts": 1,
              "transient": False, "pictures": "done", "pictures_error": None, "first_arrival": WHEN,
              "created_at": WHEN, "queued_at": WHEN, "started_at": WHEN, "finished_at": WHEN}],
    "alerts": [{"id": 1, "set_id": "s1", "version": "v" * 64, "night": "2010-05-12", "profile": "crires",
                "setting_key": "3218.600_25.000_Halogen", "reasons": json.dumps([MAX_FLUX]), "state": "open",
                "created_at": WHEN, "updated_at": WHEN, "notify_attempts": 2, "notify_error": "no route",
                "severity": "alert"}],
    "crires_flat": [{"id": d, "set_id": "s1", "version": "v" * 64, "night": "2010-05-12", "mjd_obs": 55328.9,
                     "setting_key": "3218.600_25.000_Halogen", "cwlen": 3218.6, "baffle_pos": 25.0,
                     "lamp": "Halogen", "n_raw": 1, "raw_type": "FLAT", "detector": d, "mean_level": 1234.5,
                     "mean_flux": 510.0 if d == 1 else 300.0, "rms_master": 0.07 if d == 4 else 0.1,
                     "badpix": 17, "median_snr": None, "certified": False, "verdict": "failed",
                     "reasons": json.dumps([MAX_FLUX, NOT_ASSESSABLE]),
                     "master_file": "/qc/master.fits", "raw_files": ["/data/a.fits"], "processed_at": WHEN}
                    for d in (1, 2, 3, 4)],
}
"""Rows as flatqc 0.1.0 wrote them (only columns of that release: valid whatever the tables gain later)."""
TEXT_COLUMNS = {"alerts": "reasons", "crires_flat": "reasons"}
"""The columns of those rows that held sentences: converted to data by revision 0003."""
KEPT_ROWS = {name: [{k: v for k, v in row.items() if k != TEXT_COLUMNS.get(name)} for row in rows]
             for name, rows in RELEASE_ROWS.items()}
"""The release rows as every later revision keeps them."""


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def make_release_database(engine: Engine) -> None:
    """The tables of flatqc 0.1.0 (the baseline revision, the frozen copy of its schema) and no
    ``alembic_version``: what that release created on start."""
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), migrations.BASELINE)
        conn.execute(text("DROP TABLE alembic_version"))


def insert_rows(engine: Engine, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Insert through the tables as they are in the database (reflected), not as ``flatqc.db`` has them now."""
    reflected = MetaData()
    with engine.begin() as conn:
        reflected.reflect(conn, only=list(rows))
        for name, table_rows in rows.items():
            conn.execute(reflected.tables[name].insert(), table_rows)


def read_rows(engine: Engine, like: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """The rows of the tables in ``like``, limited to the columns given there, ordered by id."""
    reflected = MetaData()
    with engine.connect() as conn:
        reflected.reflect(conn, only=list(like))
        return {name: [dict(r._mapping) for r in conn.execute(
                    select(*(reflected.tables[name].c[c] for c in rows[0])).order_by(reflected.tables[name].c.id))]
                for name, rows in like.items()}


def differences(engine: Engine, target: MetaData = metadata) -> list[Any]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), target)


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current(conn)


def test_an_empty_database_is_built_by_the_revisions_as_the_models_say(engine: Engine) -> None:
    logging_before = logging.root.level, list(logging.root.handlers)
    create_schema(engine)
    assert (logging.root.level, logging.root.handlers) == logging_before  # Alembic leaves logging alone
    assert not logging.getLogger("flatqc").disabled
    assert revision(engine) == migrations.head()
    assert differences(engine) == []
    create_schema(engine)  # again: at head, nothing to do
    assert revision(engine) == migrations.head()


def test_the_comparison_sees_a_column_without_a_revision(engine: Engine) -> None:
    """The check above can fail: a column added to the models but to no revision is reported."""
    create_schema(engine)
    newer = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(newer)
    newer.tables["alerts"].append_column(Column("not_in_any_revision", String(64)))
    assert [d[0] for d in differences(engine, newer)] == ["add_column"]


def test_the_baseline_downgrades_to_nothing(engine: Engine) -> None:
    create_schema(engine)
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}


def test_a_release_database_is_upgraded_with_its_rows(engine: Engine) -> None:
    make_release_database(engine)
    insert_rows(engine, RELEASE_ROWS)
    create_schema(engine)
    assert revision(engine) == migrations.head()
    assert read_rows(engine, KEPT_ROWS) == KEPT_ROWS
    assert read_rows(engine, {"sets": [{"token": 0}]}) == {"sets": [{"token": 0}]}  # no attempt holds it
    assert differences(engine) == []


def test_an_older_database_gets_its_missing_columns_and_tables(engine: Engine) -> None:
    """Made by a release before 0.1.0: no ``alerts.severity``, no ``sets.pictures``, no ``job_events`` table."""
    make_release_database(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE alerts DROP COLUMN severity"))
        conn.execute(text("ALTER TABLE sets DROP COLUMN pictures"))
        conn.execute(text("DROP TABLE job_events"))
    older = {name: [{k: v for k, v in row.items() if k not in ("severity", "pictures")} for row in rows]
             for name, rows in RELEASE_ROWS.items()}
    insert_rows(engine, older)
    create_schema(engine)
    assert revision(engine) == migrations.head()
    kept = {name: [{k: v for k, v in row.items() if k != TEXT_COLUMNS.get(name)} for row in rows]
            for name, rows in older.items()}
    assert read_rows(engine, kept) == kept
    assert read_rows(engine, {"alerts": [{"severity": None}], "sets": [{"pictures": None}]}) == {
        "alerts": [{"severity": None}], "sets": [{"pictures": None}]}
    assert differences(engine) == []


def test_processes_starting_together_upgrade_once(engine: Engine, db_url: str) -> None:
    """Three processes upgrade a release database at once: one completes it, the others find it at head."""
    make_release_database(engine)
    insert_rows(engine, RELEASE_ROWS)
    code = "import sys; from flatqc.db import connect; connect(sys.argv[1]).dispose()"
    starts = [subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in starts]
    assert [p.returncode for p in starts] == [0, 0, 0], errors
    assert revision(engine) == migrations.head()
    assert read_rows(engine, KEPT_ROWS) == KEPT_ROWS


def test_flatqc_db_upgrade_and_current(engine: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make_release_database(engine)
    insert_rows(engine, RELEASE_ROWS)
    monkeypatch.delenv("FLATQC_CONFIG", raising=False)
    monkeypatch.setenv("FLATQC_DB_URL", db_url)

    def flatqc(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    head = migrations.head()
    assert flatqc("db", "current").startswith("no revision")
    assert f"upgraded from no revision to {head}" in flatqc("db", "upgrade")
    assert f"already at revision {head}" in flatqc("db", "upgrade")
    assert flatqc("db", "current").strip() == f"{head} (newest)"
    assert read_rows(engine, KEPT_ROWS) == KEPT_ROWS


def stored_findings(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            'SELECT set_id, version, kind, parameter, detector, value, relation, "limit", low, high FROM findings '
            "ORDER BY id"))]


def test_old_sentences_become_findings_and_come_back_on_downgrade(engine: Engine) -> None:
    """The reasons, note and alerts of a release database are converted to data once (and the trend warnings the
    pages computed are computed from its QC1 values); the downgrade words them as they were."""
    make_release_database(engine)
    warning = RELEASE_ROWS["alerts"][0] | {"id": 2, "reasons": json.dumps([MEAN_FLUX]), "severity": "warning"}
    inserted = RELEASE_ROWS | {"alerts": [*RELEASE_ROWS["alerts"], warning]}
    insert_rows(engine, inserted)
    create_schema(engine)
    version = "v" * 64
    # 3218.6 nm: mean_flux 75 .. 500, rms_master 0.08 .. 0.145 (contract 7); detector 1 at 510, detector 4 at 0.07
    assert stored_findings(engine) == [
        ("s1", version, "certification", "max_flux", 2, 12000.0, ">", 10000.0, None, None),
        ("s1", version, "not_assessable", "n_raw", None, 1.0, "<", 3.0, None, None),
        ("s1", version, "trend_limit", "mean_flux", 1, 510.0, ">", 500.0, 75.0, 500.0),
        ("s1", version, "trend_limit", "rms_master", 4, 0.07, "<", 0.08, 0.08, 0.145),
    ]
    finding = dict.fromkeys(("kind", "parameter", "detector", "value", "relation", "limit", "low", "high"))
    with engine.connect() as conn:
        reasons = [json.loads(r) for r in conn.execute(text("SELECT reasons FROM alerts ORDER BY id")).scalars()]
    assert reasons == [
        [finding | {"kind": "certification", "parameter": "max_flux", "detector": 2, "value": 12000.0,
                    "relation": ">", "limit": 10000.0}],
        [finding | {"kind": "trend_limit", "parameter": "mean_flux", "detector": 1, "value": 510.0, "relation": ">",
                    "limit": 500.0, "low": 75.0, "high": 500.0}],
    ]
    with engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), migrations.BASELINE)
    assert read_rows(engine, inserted) == inserted
    assert "findings" not in inspect(engine).get_table_names()


def test_a_sentence_flatqc_never_wrote_stops_the_upgrade(engine: Engine) -> None:
    """Rather than lose it: the upgrade fails naming the row, and nothing is changed."""
    make_release_database(engine)
    insert_rows(engine, RELEASE_ROWS | {"alerts": [RELEASE_ROWS["alerts"][0] | {"reasons": '["S/N below 50"]'}]})
    with pytest.raises(RuntimeError, match=r"alert #1: 'S/N below 50' is in no wording flatqc wrote"):
        create_schema(engine)
    assert revision(engine) is None and "findings" not in inspect(engine).get_table_names()
    assert read_rows(engine, RELEASE_ROWS)["crires_flat"] == RELEASE_ROWS["crires_flat"]
