"""Read-only queries behind the dashboard and its JSON API (the web never computes QC itself)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection, Engine

from flatqc import ledger
from flatqc.db import (
    ALERT,
    QC1_TABLES,
    WARNING,
    alerts,
    files,
    findings_from_json,
    job_events,
    read_findings,
    sets,
    severity_is,
)
from flatqc.files import shown
from flatqc.lifecycle.alerts import delivery_outcome
from flatqc.queue import Lane
from flatqc.status import Backfill, problem_files, waiting_files
from flatqc.web import assessment
from qc.certify import sentence
from qc.profiles import profile_named
from qc.records import QC1_NAMES, Finding, FindingKind
from qc.scores import worst_text
from qc.times import mjd_to_datetime

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


PICTURE_OF = {"median_snr": "flat4", "max_flux": "flat5", "num_overexp": "flat5", "level_overexp": "flat5",
              "badpix": "flat3", "bpm_count": "flat3"}
"""The picture that explains a reason about a QC1 parameter (trend parameters: the trend page instead)."""
ATTENTION = ("failed", "rejected", "warning", "not_assessable", "pending", "incomplete", "passed")
"""Order of the sets of a night: what needs a look first."""


def about(found: Sequence[Finding]) -> list[dict[str, Any]]:
    """Each stored finding as data, with its sentence and the picture that explains it."""
    return [asdict(f) | {"text": sentence(f), "picture": PICTURE_OF.get(f.parameter)} for f in found]


def flagged(found: list[dict[str, Any]]) -> list[str]:
    """``"<parameter>/<detector>"`` of each QC1 cell a finding is about (highlighted on the pages)."""
    return [f"{f['parameter']}/{f['detector']}" for f in found if f["detector"] is not None]


def with_findings(alert: dict[str, Any]) -> dict[str, Any]:
    """An ``alerts`` row with its stored reasons as data (``findings``) and as sentences (``reasons``)."""
    found = findings_from_json(alert["reasons"])
    alert["findings"], alert["reasons"] = about(found), [sentence(f) for f in found]
    return alert


def observed(mjd: float | None) -> str | None:
    """MJD-OBS as a UTC time to the second."""
    return None if mjd is None else mjd_to_datetime(mjd).strftime("%Y-%m-%d %H:%M:%S")


def instrument_title(profile: str | None) -> str | None:
    return profile_named(profile).title if profile else None


def _with_qc_summary(entry: dict[str, Any], rows: list[dict[str, Any]],
                     found: dict[tuple[str, str | None], list[Finding]]) -> dict[str, Any]:
    """A set row with its QC1 rows, the findings stored with them (reasons and notes, trend warnings: value and
    limit), observation time and instrument."""
    entry["qc1"] = rows
    stored = found.get((entry["set_id"], rows[0]["version"]), []) if rows else []
    entry["about"] = about([f for f in stored if f.kind != FindingKind.TREND_LIMIT])
    entry["warnings_about"] = about([f for f in stored if f.kind == FindingKind.TREND_LIMIT])
    if not rows and entry["reason"]:  # no verdict: why (rejected, failed, incomplete ...)
        entry["about"] = [{"text": entry["reason"], "detector": None, "parameter": None, "picture": None}]
    entry["reasons"] = [r["text"] for r in entry["about"]]
    entry["warnings"] = [w["text"] for w in entry["warnings_about"]]
    entry["flagged"], entry["warned"] = flagged(entry["about"]), flagged(entry["warnings_about"])
    entry["observed"] = observed(rows[0]["mjd_obs"]) if rows else None
    entry["instrument"] = instrument_title(entry["profile"])
    entry["attention"] = _attention(entry)
    return entry


def _attention(entry: dict[str, Any]) -> str:
    if entry["verdict"] == "failed":
        return "failed"
    if entry["state"] in ("failed", "rejected"):
        return "rejected"
    if entry["warnings"]:
        return "warning"
    if entry["verdict"] in ("not_assessable", "passed"):
        return entry["verdict"]
    return "incomplete" if entry["state"] == "incomplete" else "pending"


def neighbour_nights(conn: Connection, night: str) -> tuple[str | None, str | None]:
    """The nearest earlier and later night the ledger knows (sets or files)."""
    earlier = [conn.execute(select(func.max(c)).where(c < night)).scalar() for c in (sets.c.night, files.c.night)]
    later = [conn.execute(select(func.min(c)).where(c > night)).scalar() for c in (sets.c.night, files.c.night)]
    return max((n for n in earlier if n), default=None), min((n for n in later if n), default=None)


def night_detail(engine: Engine, night: str) -> dict[str, Any] | None:
    """Sets of a night (newest version per set_id; failed first, see ATTENTION) with QC1 rows, reasons and trend
    warnings, score, warn and fail values and review (:meth:`assessment.Assessments.of`), plus the night's score
    (worst of its sets') and review counts, unused and waiting files, open alerts and the neighbouring nights; None
    when the ledger knows nothing of that night."""
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
        previous_night, next_night = neighbour_nights(conn, night)
        found = read_findings(conn, list(latest))
        assessed = assessment.read(conn, list(latest), bad_only=True)
    for entry in latest.values():
        _with_qc_summary(entry, qc1.get(entry["set_id"], []), found)
        entry |= assessed.of(entry["set_id"], entry["qc1"])
    problems = rows_as_dicts(problem_files(engine, night))
    waiting = rows_as_dicts(waiting_files(engine, night))
    if not latest and not qc1 and not problems and not waiting and not open_alerts:
        return None
    ordered = sorted(latest.values(), key=lambda e: (ATTENTION.index(e["attention"]), e["observed"] or ""))
    for alert in open_alerts:
        with_findings(alert)
    instruments = sorted({e["instrument"] for e in ordered if e["instrument"]})
    backfill = Backfill()
    for entry in ordered:
        if entry["lane"] == Lane.BACKFILL:
            backfill.add(entry["state"])
    return {"night": night, "sets": ordered, "score": worst_text(e["score"] for e in ordered),
            "review_counts": assessment.review_counts(e["review_state"] for e in ordered if e["qc1"]),
            "files": problems, "waiting_files": waiting, "open_alerts": open_alerts,
            "previous_night": previous_night, "next_night": next_night, "instruments": instruments,
            "backfill": asdict(backfill) | {"progress": str(backfill)}}


def set_detail(engine: Engine, set_id: str) -> dict[str, Any] | None:
    """The newest version of a set with its QC1 rows, reasons and warnings (each with the cell and picture it is
    about), score and review (:meth:`assessment.Assessments.of`, plus every ``scores`` row and the tooltip of each
    scored cell, ``score_notes``), provenance, versions, job history, alerts, and the previous and next set of its
    setting."""
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
        set_alerts = rows_as_dicts(conn.execute(select(alerts).where(alerts.c.set_id == set_id)
                                                .order_by(alerts.c.id.desc())))
        table_name = profile_named(current["profile"]).table if current["profile"] else None
        neighbours = _neighbour_sets(conn, QC1_TABLES[table_name], qc1[0]) if qc1 and table_name else (None, None)
        found = read_findings(conn, [set_id])
        assessed = assessment.read(conn, [set_id])
    for alert in set_alerts:
        with_findings(alert)
    set_alerts.sort(key=lambda a: a["severity"] == WARNING)  # alerts before the warnings below them, newest first
    _with_qc_summary(current, qc1, found)
    details = assessed.details.get(set_id, [])
    current |= assessed.of(set_id, qc1) | {"scores": details, "score_notes": assessment.cell_notes(details)}
    return {"set": current, "versions": versions, "qc1": qc1, "history": history, "alerts": set_alerts,
            "reasons": current["reasons"], "warnings": current["warnings"], "qc1_names": qc1_names(current["profile"]),
            "table": table_name, "previous_set": neighbours[0], "next_set": neighbours[1]}


def set_known(engine: Engine, set_id: str) -> bool:
    """Whether the ledger knows a set of that id (any version)."""
    with engine.connect() as conn:
        return conn.execute(select(sets.c.id).where(sets.c.set_id == set_id).limit(1)).first() is not None


def _neighbour_sets(conn: Connection, table: Table, row: dict[str, Any]) -> tuple[str | None, str | None]:
    """The set observed just before and just after ``row``'s set with the same setting."""
    if row["mjd_obs"] is None:
        return None, None
    same = select(table.c.set_id).where(table.c.setting_key == row["setting_key"], table.c.detector == row["detector"])
    before = conn.execute(same.where(table.c.mjd_obs < row["mjd_obs"]).order_by(table.c.mjd_obs.desc())
                          .limit(1)).scalar()
    after = conn.execute(same.where(table.c.mjd_obs > row["mjd_obs"]).order_by(table.c.mjd_obs).limit(1)).scalar()
    return before, after


def newest_set(engine: Engine, table_name: str) -> dict[str, Any] | None:
    """The newest set of a QC1 table (by MJD-OBS, then processing time) with the state of its pictures; None when
    the table is empty."""
    table = QC1_TABLES[table_name]
    with engine.connect() as conn:
        row = conn.execute(select(table.c.set_id, table.c.night, table.c.setting_key, table.c.mjd_obs)
                           .order_by(table.c.mjd_obs.desc().nulls_last(), table.c.processed_at.desc())
                           .limit(1)).first()
        if row is None:
            return None
        pictures = conn.execute(select(sets.c.pictures).where(sets.c.set_id == row.set_id,
                                                              sets.c.state != "superseded")
                                .order_by(sets.c.id.desc()).limit(1)).scalar()
    return dict(row._mapping) | {"pictures": pictures, "observed": observed(row.mjd_obs)}


def qc1_names(profile: str | None) -> list[str]:
    """The QC1 columns of a profile's table: the contract's, plus one count per BPM bit for bit-mask BPMs."""
    return [*QC1_NAMES, *(profile_named(profile).bpm_bit_columns if profile else ())]


def open_alert_counts(engine: Engine) -> dict[tuple[str | None, str], int]:
    """Open alerts per (night, severity); rows from before severities existed count as alerts."""
    severity = func.coalesce(alerts.c.severity, ALERT)
    with engine.connect() as conn:
        open_rows = conn.execute(select(alerts.c.night, severity, func.count())
                                 .where(alerts.c.state == "open").group_by(alerts.c.night, severity))
        return {(night, severity): count for night, severity, count in open_rows}


def alert_list(engine: Engine, state: str | None = None, severity: str | None = None) -> list[dict[str, Any]]:
    """Alerts and warnings, newest first, optionally of one state and one severity, each with the outcome of its
    delivery on every channel (``deliveries``)."""
    with engine.connect() as conn:
        rows = rows_as_dicts(ledger.alerts_newest_first(conn, state, severity))
        sent = ledger.deliveries_of(conn, [row["id"] for row in rows])
    return [with_findings(row) | {"deliveries": [dict(d._mapping) | {"outcome": delivery_outcome(d)}
                                                 for d in sent[row["id"]]]} for row in rows]


JOB_LIST_LIMIT = 50
"""Jobs listed per registry on the queue page."""


def queue_jobs(engine: Engine, queues: list[Queue]) -> dict[str, list[dict[str, Any]]]:
    """Waiting, running, scheduled (retry back-off) and failed jobs of ``queues`` (in the order workers take from
    them), with their set and last error."""
    listed: dict[str, list[dict[str, Any]]] = {"waiting": [], "running": [], "scheduled": [], "failed": []}
    for queue in queues:
        registries = {
            "waiting": queue.get_job_ids(0, JOB_LIST_LIMIT - 1),
            "running": StartedJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
            "scheduled": ScheduledJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
            "failed": FailedJobRegistry(queue=queue).get_job_ids(0, JOB_LIST_LIMIT - 1),
        }
        for state, ids in registries.items():
            fetched = [j for j in Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer) if j]
            listed[state] += [job_summary(job) | {"queue": queue.name} for job in fetched]
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


def counts(rows: Any) -> dict[str, int]:
    """``{name: count}`` of ``(name, count)`` rows."""
    return {name: count for name, count in rows}


def metrics_figures(engine: Engine) -> dict[str, Any]:
    """Counters, durations and newest arrivals for ``/metrics``, read from the ledger."""
    with engine.connect() as conn:
        file_rows = conn.execute(select(files.c.state, func.count(), func.max(files.c.first_seen))
                                 .group_by(files.c.state)).all()
        set_rows = conn.execute(select(sets.c.state, func.count(), func.max(sets.c.created_at))
                                .group_by(sets.c.state)).all()
        verdicts = counts(conn.execute(select(sets.c.verdict, func.count()).where(sets.c.verdict.is_not(None))
                                       .group_by(sets.c.verdict)))
        pictures = counts(conn.execute(select(sets.c.pictures, func.count()).where(
            sets.c.pictures.is_not(None), sets.c.state != "superseded").group_by(sets.c.pictures)))
        job_event_counts = counts(conn.execute(select(job_events.c.event, func.count()).group_by(job_events.c.event)))
        timing = conn.execute(select(sets.c.started_at, sets.c.finished_at, sets.c.first_arrival).where(
            sets.c.state == "done", sets.c.finished_at.is_not(None))).all()
        open_alerts = conn.execute(select(func.count()).where(alerts.c.state == "open", severity_is(ALERT))).scalar()
        open_warnings = conn.execute(select(func.count()).where(alerts.c.state == "open",
                                                                severity_is(WARNING))).scalar()
    durations = [(f - s).total_seconds() for s, f, _ in timing if s and f]
    latencies = [(f - a).total_seconds() for _, f, a in timing if a and f]
    file_states = {state: count for state, count, _ in file_rows}
    return {"file_states": file_states, "set_states": {state: count for state, count, _ in set_rows},
            "verdicts": verdicts, "pictures": pictures, "job_events": job_event_counts, "durations": durations,
            "latencies": latencies, "open_alerts": open_alerts, "open_warnings": open_warnings,
            "files_seen": sum(file_states.values()),
            "newest_file": max((t for state, _, t in file_rows if state not in ("ignored", "rejected")), default=None),
            "newest_set": max((t for _, _, t in set_rows), default=None)}


def ping_database(engine: Engine) -> None:
    """Raise if the database does not answer ``SELECT 1``."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
