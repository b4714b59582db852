"""The rq job: QC of one set version. Thin: load members from the ledger, run ``qc``, persist in one transaction,
then trends and alert delivery.

The only argument is the set version (a hex string); everything else comes from the ledger and the files.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from rq import get_current_job
from sqlalchemy.engine import Connection, Engine, Row

from flatqc import ledger
from flatqc.db import QC1_TABLES, connect, utcnow
from flatqc.files import sha256_file
from flatqc.pipeline import SetOutcome, compute_set, store_qc1
from flatqc.settings import Settings
from qc.errors import FlatQCError, InconsistentSet
from qc.fitsio import inspect_file
from qc.profiles import PROFILES, profile_named
from qc.sets import FlatSet, group_sets
from worker.alerts import record_alert, send_alert
from worker.trends import update_trends

log = logging.getLogger(__name__)


@functools.cache
def service() -> tuple[Settings, Engine]:
    """Settings and database engine of this worker process (read once from the environment)."""
    settings = Settings()
    return settings, connect(settings.db_url)


class MemberChanged(RuntimeError):
    """A member does not hold the queued bytes, or changed while it was read (re-delivered in place). Retried with
    back-off, never a rejection: the same bytes back make the retry succeed; new bytes make a new set version."""


def member_stats(paths: list[str]) -> list[tuple[int, int]]:
    """``(size, mtime_ns)`` of each member: a cheap check that nothing was rewritten while the set was read."""
    try:
        return [(st.st_size, st.st_mtime_ns) for st in (Path(p).stat() for p in paths)]
    except FileNotFoundError as exc:
        raise MemberChanged(f"{Path(exc.filename).name} disappeared while the set was processed") from None


def load_set(members: dict[str, Any], settings: Settings) -> FlatSet:
    """Re-read the members' headers and check they still hold the bytes that were queued."""
    for path, sha in zip(members["paths"], members["sha256"], strict=True):
        try:
            held = sha256_file(Path(path))
        except FileNotFoundError:
            held = None
        if held != sha:
            raise MemberChanged(f"{Path(path).name} does not hold the queued bytes (being re-delivered?)")
    frames = [inspect_file(Path(p), settings.crires.default_window_starty) for p in members["paths"]]
    grouping = group_sets(frames)
    if len(grouping.complete) != 1:
        problems = [reason for _, reason, _ in grouping.rejected] or ["members no longer form one complete set"]
        raise InconsistentSet("; ".join(problems))
    return grouping.complete[0]


def compute_members(members: dict[str, Any], settings: Settings) -> tuple[FlatSet, SetOutcome]:
    """Load and compute the set; MemberChanged (not a rejection) if a member was rewritten meanwhile, since what
    was read may be half of one version and half of another."""
    before = member_stats(members["paths"])
    try:
        flatset = load_set(members, settings)
        outcome = compute_set(flatset, settings, dict(zip(map(Path, members["paths"]), members["sha256"],
                                                          strict=True)))
    except Exception as exc:  # whatever a half-written file caused, the rewrite is the reason
        if member_stats(members["paths"]) != before:
            raise MemberChanged("a member was rewritten while the set was read") from exc
        raise
    if member_stats(members["paths"]) != before:
        raise MemberChanged("a member was rewritten while the set was read")
    return flatset, outcome


def supersede(conn: Connection, row: Row, job_id: str | None) -> dict[str, Any]:
    """Record that a newer version of the set replaced this one while its job ran; nothing else is stored."""
    why = "a newer version of this set arrived while it was processed"
    ledger.update_set(conn, row.version, state="superseded", reason=why, finished_at=utcnow())
    ledger.log_job_event(conn, row.version, job_id, "superseded", why)
    return {"set_id": row.set_id, "state": "superseded"}


def process_set(version: str) -> dict[str, Any]:
    """Process set ``version`` unless it is done already; returns a small summary (stored by rq as JSON)."""
    settings, engine = service()
    job = get_current_job()
    job_id = job.id if job else None
    with engine.begin() as conn:
        row = ledger.set_row(conn, version)
        if row is None:
            raise LookupError(f"no set version {version} in the ledger")
        if row.state in ("done", "superseded"):
            return {"set_id": row.set_id, "state": row.state, "skipped": f"already {row.state}"}
        ledger.update_set(conn, version, state="running", started_at=utcnow(), attempts=row.attempts + 1)
        ledger.log_job_event(conn, version, job_id, "started", f"attempt {row.attempts + 1}")
    members = row.members
    try:
        flatset, outcome = compute_members(members, settings)
    except FlatQCError as exc:
        with engine.begin() as conn:
            if ledger.newer_version_exists(conn, row):
                return supersede(conn, row, job_id)
            ledger.update_set(conn, version, state="rejected", reason=str(exc), finished_at=utcnow())
            ledger.set_member_files_state(conn, members, "rejected", f"set {row.set_id}: {exc}")
            ledger.log_job_event(conn, version, job_id, "rejected", str(exc))
        return {"set_id": row.set_id, "state": "rejected", "reason": str(exc)}
    except Exception as exc:
        retrying = bool(job and job.retries_left)
        with engine.begin() as conn:
            if ledger.newer_version_exists(conn, row):
                return supersede(conn, row, job_id)
            ledger.update_set(conn, version, state="queued" if retrying else "failed",
                              reason=f"{type(exc).__name__}: {exc}")
            ledger.log_job_event(conn, version, job_id, "error", f"{type(exc).__name__}: {exc}"
                                 + (" (will retry)" if retrying else " (no retries left)"))
        raise
    result = outcome.result
    with engine.begin() as conn:  # rows + set state + alert: all or nothing
        if ledger.newer_version_exists(conn, row):  # its files changed while this job ran: the newer one counts
            return supersede(conn, row, job_id)
        store_qc1(conn, flatset, outcome, settings, version)
        ledger.update_set(conn, version, state="done", verdict=result.certification.verdict, reason=None,
                          raw_type=result.raw_type, finished_at=utcnow())
        ledger.set_member_files_state(conn, members, "done")
        ledger.log_job_event(conn, version, job_id, "finished", result.certification.verdict)
        alert_id = record_alert(conn, result, version)
    profile = profile_named(flatset.profile)
    try:
        configs = {p.name: (QC1_TABLES[p.table], settings.qc_config(p.name)) for p in PROFILES.values()}
        update_trends(engine, configs, settings.qc_output / "trends", profile.name, flatset.setting_key)
    except Exception:  # noqa: BLE001 - the QC1 rows are stored; a trend page can be redrawn next time
        log.exception("trend reports of %s not updated", flatset.setting_key)
    if alert_id is not None:
        send_alert(engine, alert_id, settings.alert_urls, settings.alert_retries)
    return {"set_id": flatset.set_id, "state": "done", "verdict": result.certification.verdict,
            "reasons": list(result.certification.reasons)}
