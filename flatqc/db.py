"""The database: schema (SQLAlchemy Core), engine set-up and the few writes that must be atomic.

SQLite (WAL mode) by default, PostgreSQL by URL. Table and QC1 column names are fixed (design.md).
``create_schema`` brings a database to the newest Alembic revision (:mod:`flatqc.migrations`) on start: a change to
the tables below needs a revision there (``tests/test_migrations.py`` compares the two).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection

from flatqc import migrations
from qc.profiles import CRIRES, CRIRES_PLUS, PROFILES, InstrumentProfile
from qc.records import QC1_NAMES, DetectorQC, Finding, FindingKind, LastGoodResult, SetResult

metadata = MetaData()

def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


files = Table(
    "files", metadata,
    Column("id", Integer, primary_key=True),
    Column("path", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("mtime", Float, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("kind", String(16)),
    Column("profile", String(16)),
    Column("arcfile", Text),
    Column("set_id", String(32)),
    Column("night", String(10)),
    Column("state", String(16), nullable=False, default="seen"),
    Column("reason", Text),
    Column("first_seen", DateTime, nullable=False, default=utcnow),
    Column("last_seen", DateTime, nullable=False, default=utcnow),
    Column("current_since", DateTime),  # when these bytes last became the path's content (NULL: first_seen)
    Column("gone_at", DateTime),  # when the watcher (or a job) found the path gone (state vanished)
    Column("unreadable_since", DateTime),  # first failed read of this version in a row (EACCES/EPERM); NULL: reads
    UniqueConstraint("path", "sha256", name="uq_files_path_sha"),
    Index("ix_files_night", "night"),
    Index("ix_files_set", "set_id"),
    Index("ix_files_arcfile", "arcfile"),
)
"""The ledger: one row per file version (path + content hash)."""

sets = Table(
    "sets", metadata,
    Column("id", Integer, primary_key=True),
    Column("set_id", String(32), nullable=False),
    Column("version", String(64), nullable=False, unique=True),
    Column("night", String(10)),
    Column("profile", String(16)),
    Column("setting_key", Text),
    Column("raw_type", String(16)),
    Column("n_raw", Integer),
    Column("members", JSON),
    Column("state", String(16), nullable=False, default="waiting"),
    Column("reason", Text),
    Column("verdict", String(16)),
    Column("job_id", String(128)),
    Column("lane", String(16), nullable=False, server_default="realtime"),  # its QC queue (queue.Lane)
    Column("attempts", Integer, nullable=False, default=0),
    Column("token", Integer, nullable=False, default=0, server_default="0"),  # the attempt that owns the set (fencing)
    Column("auto_requeues", Integer, nullable=False, default=0, server_default="0"),  # repair pass's, capped
    Column("transient", Boolean),  # the last error was a transient fault (database, disk full...): retried later
    Column("pictures", String(16)),  # pending / done / failed (lifecycle.sets.Pictures)
    Column("pictures_error", Text),
    Column("first_arrival", DateTime),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("queued_at", DateTime),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Index("ix_sets_night", "night"),
    Index("ix_sets_set_id", "set_id"),
)
"""One row per set version (the hashes of its members)."""

job_events = Table(
    "job_events", metadata,
    Column("id", Integer, primary_key=True),
    Column("version", String(64), nullable=False),
    Column("job_id", String(128)),
    Column("event", String(16), nullable=False),
    Column("detail", Text),
    Column("at", DateTime, nullable=False, default=utcnow),
    Index("ix_job_events_version", "version"),
)
"""History of each set version's job: queued, started, finished, failed, retried."""

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True),
    Column("set_id", String(32), nullable=False),
    Column("version", String(64)),
    Column("night", String(10)),
    Column("profile", String(16)),
    Column("setting_key", Text),
    Column("reasons", Text, nullable=False),
    Column("state", String(16), nullable=False, default="open"),
    Column("created_at", DateTime, nullable=False, default=utcnow),
    Column("updated_at", DateTime, nullable=False, default=utcnow),
    Column("acknowledged_by", Text),
    Column("acknowledged_at", DateTime),
    Column("comment", Text),
    Column("resolved_at", DateTime),
    Column("notify_attempts", Integer, nullable=False, default=0),
    Column("notified_at", DateTime),
    Column("notify_error", Text),
    Column("severity", String(16)),  # "alert" (failed certification; NULL in older rows) or "warning" (trend limits)
    Column("cover_sent_at", DateTime),  # the cover sheet followed the notification (channels with attachments)
    Index("ix_alerts_set", "set_id"),
    Index("ix_alerts_state", "state"),
)
"""One alert per failing set (contract 5), and one warning per set outside its HealthCheck trend limits."""

deliveries = Table(
    "deliveries", metadata,
    Column("id", Integer, primary_key=True),
    Column("alert_id", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # "alert" (the notification) or "cover" (the cover sheet that follows)
    Column("channel", Text, nullable=False),  # the apprise URL, passwords masked (flatqc.urls.masked)
    Column("attachment", Text),  # the file a cover delivery attaches
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("sent_at", DateTime),
    Column("due_at", DateTime),  # next attempt (or the end of a running one's hold); NULL: sent or given up
    Index("ix_deliveries_alert", "alert_id"),
    Index("ix_deliveries_due", "due_at"),
)
"""One row per alert (or cover sheet) and channel: the outcome of its delivery, retried alone while it fails."""

findings = Table(
    "findings", metadata,
    Column("id", Integer, primary_key=True),
    Column("set_id", String(32), nullable=False),
    Column("version", String(64)),  # the set version whose QC1 rows they were made with (as the QC1 rows' version)
    Column("kind", String(16), nullable=False),  # qc.records.FindingKind
    Column("parameter", String(32), nullable=False),
    Column("detector", Integer),  # NULL: about the whole set
    Column("value", Float),
    Column("relation", String(2)),
    Column("limit", Float),
    Column("low", Float),
    Column("high", Float),
    Index("ix_findings_set_version", "set_id", "version"),
)
"""What the verdict of a set version found, as data (``qc.records.Finding``): failed checks, notes, trend-limit
warnings; in the order made (``id``)."""

scores = Table(
    "scores", metadata,
    Column("id", Integer, primary_key=True),
    Column("qc1_table", String(32), nullable=False),
    Column("set_id", String(32), nullable=False),
    Column("detector", Integer, nullable=False),
    Column("parameter", String(32), nullable=False),
    Column("kind", String(16), nullable=False),  # qc.thresholds.ThresholdKind
    Column("score", String(8)),  # qc.scores.Score; NULL: too little history, or no value
    Column("value", Float),
    Column("low", Float),
    Column("high", Float),
    Column("centre", Float),
    Column("spread", Float),
    Column("n_points", Integer),
    Index("ix_scores_set", "set_id"),
)
"""What each score of a QC1 row was scored against (``qc.scores.ParameterScore``): the fixed bounds, or the centre,
spread and warning band of the earlier rows; replaced with the set's QC1 rows and by ``flatqc rescore``."""

reviews = Table(
    "reviews", metadata,
    Column("id", Integer, primary_key=True),
    Column("set_id", String(32), nullable=False),
    Column("version", String(64)),  # the set version looked at (the QC1 rows' version then)
    Column("night", String(10)),
    Column("decision", String(16), nullable=False),  # flatqc.lifecycle.reviews.Decision
    Column("reviewer", Text, nullable=False),
    Column("comment", Text),
    Column("decided_at", DateTime, nullable=False, default=utcnow),
    Column("replaced_by", Integer),  # the later decision on the set that replaced this one; NULL: in force
    Index("ix_reviews_set", "set_id", "replaced_by"),
    Index("ix_reviews_night", "night"),
)
"""Every review decision on a set (contract 9, ESO certifyProducts): who, when, what, why, and the one that
replaced it; written only by :mod:`flatqc.lifecycle.reviews`."""

FINDING_FIELDS = tuple(f.name for f in fields(Finding))
"""The columns of ``findings`` that make a :class:`Finding`."""

ALERT, WARNING = "alert", "warning"
"""Severities of an ``alerts`` row: a failed certification, and the trend-limit warning below it."""


def severity_is(severity: str) -> Any:
    """SQL condition: an ``alerts`` row of ``severity`` (rows from before severities existed are alerts)."""
    return func.coalesce(alerts.c.severity, ALERT) == severity


def qc1_table(profile: InstrumentProfile) -> Table:
    """The QC1 table of one instrument profile: keys, its setting columns, the contract's QC1 columns (and its BPM
    bit counts), provenance; one row per (set_id, detector)."""
    name = profile.table
    int_names = {"badpix", "num_overexp", "bpm_count", "bpm_new", "bpm_fixed", *profile.bpm_bit_columns}
    qc1_names = (*QC1_NAMES, *profile.bpm_bit_columns)
    qc1_columns = [Column(n, Integer if n in int_names else Float) for n in qc1_names]
    last_good_columns = [  # contract 9: the comparison with the last good set of the setting
        Column("prev_set_id", String(32)), Column("prev_note", Text),
        Column("prev_ratio_median", Float), Column("prev_ratio_std", Float),
        *(Column(f"delta_{n}", Integer if n in int_names else Float) for n in qc1_names),
    ]
    setting_columns = [Column(c.name, Float if c.numeric else String(32)) for c in profile.setting_columns]
    return Table(
        name, metadata,
        Column("id", Integer, primary_key=True),
        Column("set_id", String(32), nullable=False),
        Column("version", String(64)),
        Column("night", String(10), nullable=False),
        Column("mjd_obs", Float),
        Column("setting_key", Text, nullable=False),
        *setting_columns,
        Column("dit", Float),
        Column("ndit", Integer),
        Column("n_raw", Integer, nullable=False),
        Column("ny", Integer),
        Column("window_starty", Integer),
        Column("raw_type", String(16), nullable=False),
        Column("detector", Integer, nullable=False),
        *qc1_columns,
        Column("vignetted_pixels", Integer),
        *last_good_columns,
        Column("certified", Boolean, nullable=False),
        Column("verdict", String(16), nullable=False),
        Column("master_file", Text, nullable=False),
        Column("master_sha256", String(64)),
        Column("bpm_file", Text),
        Column("bpm_sha256", String(64)),
        Column("raw_files", JSON),
        Column("raw_sha256", JSON),
        Column("reference", Text),
        Column("thresholds_version", String(64)),
        Column("software_version", String(32)),
        Column("processed_at", DateTime, nullable=False, default=utcnow),
        *score_columns(qc1_names),
        UniqueConstraint("set_id", "detector", name=f"uq_{name}_set_det"),
        Index(f"ix_{name}_night", "night"),
        Index(f"ix_{name}_key_mjd", "setting_key", "mjd_obs"),
    )


def score_columns(parameters: Sequence[str]) -> list[Column[Any]]:
    """The scores of a QC1 row (contract 9): ``score_<parameter>`` of each of ``parameters`` (``ok``, ``warn``,
    ``fail`` or NULL), ``score`` (the row's worst) and the threshold file they used (name, content hash)."""
    return [*(Column(f"score_{name}", String(8)) for name in parameters), Column("score", String(8)),
            Column("thresholds_file", Text), Column("thresholds_sha256", String(64))]


QC1_TABLES: dict[str, Table] = {profile.table: qc1_table(profile) for profile in PROFILES.values()}
"""QC1 table of each instrument profile, by table name (``crires_flat``, ``criresp_flat``: fixed by design.md)."""
crires_flat, criresp_flat = QC1_TABLES[CRIRES.table], QC1_TABLES[CRIRES_PLUS.table]


def make_engine(url: str, busy_timeout_s: float = 30) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout (``busy_timeout_s``) and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            cursor.close()

        @event.listens_for(engine, "savepoint")
        def _begin_before_savepoint(conn: Connection, _name: str) -> None:
            # pysqlite opens a transaction only before INSERT/UPDATE/DELETE: a SAVEPOINT as the first statement
            # would start one of its own, and its RELEASE would commit what should wait for the outer commit.
            dbapi = conn.connection.dbapi_connection
            if dbapi is not None and not dbapi.in_transaction:
                conn.exec_driver_sql("BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


SCHEMA_LOCK_KEY = 0x666C617471630001
"""PostgreSQL advisory lock held while the schema is created or migrated ("flatqc" in ASCII, then 1)."""


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest revision: create it in an empty database, complete and stamp one made before
    migrations existed, apply the missing revisions (:func:`flatqc.migrations.upgrade`).

    Serialized across processes, so that services started together against a new database do not race (two
    ``CREATE TABLE`` at once end in a unique violation in PostgreSQL's catalogue): on PostgreSQL the whole of it runs
    in one transaction holding ``pg_advisory_xact_lock(SCHEMA_LOCK_KEY)``, on SQLite in a ``BEGIN IMMEDIATE``
    transaction (the database's write lock); Alembic runs on that connection. The second process then finds the
    schema at the newest revision and does nothing.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite runs DDL outside any transaction unless one is opened explicitly.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        migrations.upgrade(conn)


def connect(url: str) -> Engine:
    """Engine with the schema in place: the one call services make at start."""
    engine = make_engine(url)
    create_schema(engine)
    return engine


def qc1_rows(result: SetResult, provenance: dict[str, Any], software_version: str,
             thresholds_version: str, setting_columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The QC1 rows (one per detector) of one set result, with its comparison with the last good set, ready to
    insert."""
    last_good = result.last_good
    base = {
        "set_id": result.set_id,
        "night": result.night,
        "mjd_obs": result.mjd_obs,
        "setting_key": result.setting_key,
        **setting_columns,
        "dit": result.dit,
        "ndit": result.ndit,
        "n_raw": result.n_raw,
        "ny": result.window_ny,
        "window_starty": result.window_starty,
        "raw_type": result.raw_type,
        "certified": result.certification.certified,
        "verdict": result.certification.verdict,
        "reference": result.reference,
        "prev_set_id": last_good.set_id,
        "prev_note": last_good.note,
        "thresholds_version": thresholds_version,
        "software_version": software_version,
        "processed_at": utcnow(),
        **provenance,
    }
    return [base | {"detector": d.detector, "vignetted_pixels": d.vignetted_pixels} | d.qc1() | _compared(last_good, d)
            for d in result.detectors]


def _compared(last_good: LastGoodResult, detector: DetectorQC) -> dict[str, Any]:
    """The ``prev_ratio_*`` and ``delta_*`` columns of one detector (absent, so NULL, without a last good set)."""
    comparison = last_good.of(detector.detector)
    return comparison.columns() if comparison is not None else {}


def replace_qc1_rows(conn: Connection, table: Table, set_id: str, rows: list[dict[str, Any]]) -> None:
    """Replace the rows of ``set_id`` (delete + insert in the caller's transaction: no duplicates, no half sets)."""
    conn.execute(delete(table).where(table.c.set_id == set_id))
    if rows:
        conn.execute(insert(table), rows)


def finding_of(row: Mapping[Any, Any]) -> Finding:
    """A :class:`Finding` from a ``findings`` row or its JSON object."""
    return Finding(**{name: row[name] for name in FINDING_FIELDS} | {"kind": FindingKind(row["kind"])})


def findings_json(found: Iterable[Finding]) -> str:
    """Findings as the JSON text of an ``alerts.reasons`` value (a list of objects)."""
    return json.dumps([asdict(f) for f in found])


def findings_from_json(text: str) -> list[Finding]:
    """The findings of an ``alerts.reasons`` value."""
    return [finding_of(item) for item in json.loads(text)]


def replace_findings(conn: Connection, set_id: str, version: str | None, found: Sequence[Finding]) -> None:
    """Store what the verdict of ``version`` found, replacing what an earlier run of that version stored."""
    conn.execute(delete(findings).where(findings.c.set_id == set_id, findings.c.version == version))
    if found:
        conn.execute(insert(findings), [asdict(f) | {"set_id": set_id, "version": version} for f in found])


def read_findings(conn: Connection, set_ids: Iterable[str]) -> dict[tuple[str, str | None], list[Finding]]:
    """The findings of the sets ``set_ids``, by ``(set_id, version)``, each in the order made."""
    query = select(findings).where(findings.c.set_id.in_(list(set_ids))).order_by(findings.c.id)
    found: dict[tuple[str, str | None], list[Finding]] = {}
    for row in conn.execute(query).mappings():
        found.setdefault((row["set_id"], row["version"]), []).append(finding_of(row))
    return found
