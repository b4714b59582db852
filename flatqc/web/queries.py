"""Read-only queries behind the dashboard and its JSON API (the web never computes QC itself)."""

from __future__ import annotations

import json
from typing import Any

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from flatqc.db import QC1_TABLES, alerts, files, job_events, sets
from flatqc.files import shown
from flatqc.status import problem_files
from qc.config import QCConfig
from qc.profiles import profile_named
from qc.records import QC1_NAMES

PATH_KEYS = ("path", "master_file", "bpm_file")


def rows_as_dicts(rows: Any) -> list[dict[str, Any]]:
    """Rows as dicts, with file names as people read them (undecodable bytes as ``\\xNN``, see ``files.shown``)."""
    return [_paths_shown(dict(r._mapping)) for r in rows]


def _paths_shown(row: dict[str, Any]) -> dict[str, Any]:
    for key in PATH_KEYS:
        if isinstance(row.get(key), str):
            row[key] = shown(row[key])
    if isinstance(row.get("raw_files"), list):
        row["raw_files"] = [shown(p) for p in row["raw_files"]]
    if isinstance(row.get("members"), dict) and isinstance(row["members"].get("paths"), list):
        row["members"] = row["members"] | {"paths": [shown(p) for p in row["members"]["paths"]]}
    return row


def decode_reasons(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return value if isinstance(value, list) else [str(value)]


def night_detail(engine: Engine, night: str) -> dict[str, Any] | None:
    """Sets of a night (newest version per set_id) with QC1 rows, plus unused files and open alerts; None when the
    ledger knows nothing of that night."""
    with engine.connect() as conn:
        set_rows = rows_as_dicts(conn.execute(
            select(sets).where(sets.c.night == night, sets.c.state != "superseded").order_by(sets.c.id)))
        latest: dict[str, dict[str, Any]] = {}
        for row in set_rows:
            latest[row["set_id"]] = row
        qc1: dict[str, list[dict[str, Any]]] = {}
        for table in QC1_TABLES.values():
            for row in rows_as_dicts(conn.execute(select(table).where(table.c.night == night)
                                                  .order_by(table.c.set_id, table.c.detector))):
                qc1.setdefault(row["set_id"], []).append(row)
        open_alerts = rows_as_dicts(conn.execute(select(alerts).where(alerts.c.night == night,
                                                                      alerts.c.state == "open")))
    for entry in latest.values():
        entry["qc1"] = qc1.get(entry["set_id"], [])
        entry["reasons"] = decode_reasons(entry["qc1"][0]["reasons"]) if entry["qc1"] else (
            [entry["reason"]] if entry["reason"] else [])
    problems = rows_as_dicts(problem_files(engine, night))
    if not latest and not qc1 and not problems and not open_alerts:
        return None
    return {"night": night, "sets": list(latest.values()), "files": problems, "open_alerts": open_alerts}


def set_detail(engine: Engine, set_id: str) -> dict[str, Any] | None:
    """The newest version of a set with its QC1 rows, provenance, versions and job history."""
    with engine.connect() as conn:
        versions = rows_as_dicts(conn.execute(select(sets).where(sets.c.set_id == set_id,
                                                                 sets.c.state != "superseded").order_by(sets.c.id)))
        if not versions:
            return None
        current = versions[-1]
        qc1 = []
        for table in QC1_TABLES.values():
            qc1 += rows_as_dicts(conn.execute(select(table).where(table.c.set_id == set_id)
                                              .order_by(table.c.detector)))
        history = rows_as_dicts(conn.execute(select(job_events).where(
            job_events.c.version.in_([v["version"] for v in versions])).order_by(job_events.c.id)))
        set_alerts = rows_as_dicts(conn.execute(select(alerts).where(alerts.c.set_id == set_id)))
    for alert in set_alerts:
        alert["reasons"] = decode_reasons(alert["reasons"])
    return {"set": current, "versions": versions, "qc1": qc1, "history": history, "alerts": set_alerts,
            "reasons": decode_reasons(qc1[0]["reasons"]) if qc1 else ([current["reason"]] if current["reason"] else []),
            "qc1_names": qc1_names(current["profile"])}


def qc1_names(profile: str | None) -> list[str]:
    """The QC1 columns of a profile's table: the contract's, plus one count per BPM bit for bit-mask BPMs."""
    bits = profile_named(profile).bpm_bits if profile else None
    return [*QC1_NAMES, *(f"bpm_{name}" for name in bits or ())]


def alert_list(engine: Engine, state: str | None = None) -> list[dict[str, Any]]:
    query = select(alerts).order_by(alerts.c.id.desc())
    if state:
        query = query.where(alerts.c.state == state)
    with engine.connect() as conn:
        rows = rows_as_dicts(conn.execute(query))
    for row in rows:
        row["reasons"] = decode_reasons(row["reasons"])
    return rows


JOB_LIST_LIMIT = 50
"""Jobs listed per registry on the queue page."""


def queue_jobs(engine: Engine, queues: list[Queue]) -> dict[str, list[dict[str, Any]]]:
    """Waiting, running, scheduled (retry back-off) and failed jobs of ``queues`` (QC, then pictures), with their
    set and last error."""
    listed: dict[str, list[dict[str, Any]]] = {"waiting": [], "running": [], "scheduled": [], "failed": []}
    for queue in queues:
        registries = {
            "waiting": queue.get_job_ids(0, JOB_LIST_LIMIT - 1),
            "running": StartedJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
            "scheduled": ScheduledJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
            "failed": FailedJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
        }
        for state, ids in registries.items():
            jobs = [j for j in Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer) if j]
            listed[state] += [job_summary(job) | {"queue": queue.name} for job in jobs]
    versions = {j["version"] for jobs in listed.values() for j in jobs if j["version"]}
    with engine.connect() as conn:
        set_ids = dict(conn.execute(select(sets.c.version, sets.c.set_id).where(sets.c.version.in_(versions))).all())
    for jobs in listed.values():
        for job in jobs:
            job["set_id"] = set_ids.get(job["version"])
    return listed


def job_summary(job: Job) -> dict[str, Any]:
    """What the queue page shows of one rq job; the error is the last line of its latest traceback."""
    result = job.latest_result() if job.is_failed else None
    error = (result.exc_string or "").strip().splitlines()[-1:] if result and result.exc_string else []
    version = job.args[0] if job.args and isinstance(job.args[0], str) else None
    return {"id": job.id, "function": job.func_name, "version": version, "enqueued_at": job.enqueued_at,
            "started_at": job.started_at, "ended_at": job.ended_at, "retries_left": job.retries_left,
            "error": error[0] if error else None}


def trend_limits(config: QCConfig, key: str, parameter: str) -> tuple[float, float] | None:
    limits = config.trend_limits.get(key)
    return getattr(limits, parameter, None) if limits else None


def metrics_figures(engine: Engine) -> dict[str, Any]:
    """Counters and durations for ``/metrics``, read from the ledger."""
    with engine.connect() as conn:
        file_states = dict(conn.execute(select(files.c.state, func.count()).group_by(files.c.state)).all())
        set_states = dict(conn.execute(select(sets.c.state, func.count()).group_by(sets.c.state)).all())
        verdicts = dict(conn.execute(select(sets.c.verdict, func.count()).where(sets.c.verdict.is_not(None))
                                     .group_by(sets.c.verdict)).all())
        timing = conn.execute(select(sets.c.started_at, sets.c.finished_at, sets.c.first_arrival).where(
            sets.c.state == "done", sets.c.finished_at.is_not(None))).all()
        open_alerts = conn.execute(select(func.count()).where(alerts.c.state == "open")).scalar()
    durations = [(f - s).total_seconds() for s, f, _ in timing if s and f]
    latencies = [(f - a).total_seconds() for _, f, a in timing if a and f]
    return {"file_states": file_states, "set_states": set_states, "verdicts": verdicts, "durations": durations,
            "latencies": latencies, "open_alerts": open_alerts, "files_seen": sum(file_states.values())}

