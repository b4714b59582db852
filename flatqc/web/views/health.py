"""Prometheus metrics (``/metrics``) and the health check (``/healthz``: database, QC output folder writable, Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from flatqc.folders import folder_problem
from flatqc.readiness import one_line
from flatqc.web import queries
from flatqc.web.views import backends

blueprint = Blueprint("health", __name__)


@blueprint.get("/metrics")
def metrics() -> Any:
    """The metrics registry in Prometheus' text format, collected now."""
    return generate_latest(backends().metrics), 200, {"Content-Type": CONTENT_TYPE_LATEST}


@blueprint.get("/healthz")
def healthz() -> Any:
    """Each dependency "ok", "not configured" or the error; 503 when any is in error."""
    web = backends()
    checks: dict[str, str] = {}
    try:
        queries.ping_database(web.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        checks["database"] = f"error: database unreachable: {one_line(exc)}"
    checks["qc_output"] = writable(web.settings.qc_output)
    if web.redis is None:
        checks["redis"] = "not configured"
    else:
        try:
            web.redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            checks["redis"] = f"error: Redis unreachable: {one_line(exc)}"
    healthy = all(v in ("ok", "not configured") for v in checks.values())
    return jsonify(checks | {"healthy": healthy}), 200 if healthy else 503


def writable(folder: Path) -> str:
    """"ok" if a file can be created and deleted in ``folder`` (a real probe; the folder is not created), else the
    error and how to fix it."""
    problem = folder_problem(folder, write=True, create=False)
    return f"error: QC output folder: {problem}" if problem else "ok"
