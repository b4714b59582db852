"""Prometheus metrics (``/metrics``) and the health check (``/healthz``: database, QC output folder writable, Redis,
the watcher's heartbeat; the ages of every heartbeat, and how often ``flatqc up`` restarted a process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from flatqc.folders import folder_problem
from flatqc.heartbeat import Heartbeats, read_heartbeats
from flatqc.logs import one_line
from flatqc.supervision import restart_counts
from flatqc.web import queries
from flatqc.web.views import backends

blueprint = Blueprint("health", __name__)


@blueprint.get("/metrics")
def metrics() -> Any:
    """The metrics registry in Prometheus' text format, collected now."""
    return generate_latest(backends().metrics), 200, {"Content-Type": CONTENT_TYPE_LATEST}


@blueprint.get("/healthz")
def healthz() -> Any:
    """Each dependency "ok", "not configured" or the error, and the watcher "ok" unless its heartbeat is older than
    ``FLATQC_WATCHER_STALE_S`` (or missing); 503 when any is in error. ``heartbeat_age_s``: seconds since each;
    ``process_restarts``: per role (Redis answering)."""
    web = backends()
    checks: dict[str, str] = {}
    try:
        queries.ping_database(web.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        checks["database"] = f"error: database unreachable: {one_line(exc)}"
    checks["qc_output"] = writable(web.settings.qc_output)
    beats: Heartbeats | None = None
    restarts: dict[str, int] = {}
    if web.redis is None:
        checks["redis"] = checks["watcher"] = "not configured"
    else:
        try:
            beats = read_heartbeats(web.redis, web.settings.queue_name)
            checks["redis"] = "ok"
            checks["watcher"] = watcher_check(beats, web.settings.watcher_stale_s)
            restarts = restart_counts(web.redis, web.settings)[0]
        except RedisError as exc:
            checks["redis"] = f"error: Redis unreachable: {one_line(exc)}"
            checks["watcher"] = "error: heartbeat unknown (Redis unreachable)"
    healthy = all(v in ("ok", "not configured") for v in checks.values())
    answer: dict[str, Any] = checks | {"process_restarts": restarts, "healthy": healthy}
    if beats is not None:
        answer["heartbeat_age_s"] = beats.ages()
    return jsonify(answer), 200 if healthy else 503


def watcher_check(beats: Heartbeats, stale_s: float) -> str:
    """"ok" if the watcher completed a round within ``stale_s``, else the error."""
    last = beats.watcher.get("round")
    if last is None:
        return "error: no heartbeat from the watcher (not started, or gone for a day)"
    if beats.now - last > stale_s:
        return f"error: no watcher round for {beats.now - last:.0f} s (limit {stale_s:.0f} s)"
    return "ok"


def writable(folder: Path) -> str:
    """"ok" if a file can be created and deleted in ``folder`` (a real probe; the folder is not created), else the
    error and how to fix it."""
    problem = folder_problem(folder, write=True, create=False)
    return f"error: QC output folder: {problem}" if problem else "ok"
