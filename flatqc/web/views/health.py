"""Prometheus metrics (``/metrics``) and the health check (``/healthz``: database, QC output folder, Redis; and how
often ``flatqc up`` restarted a process)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from flatqc.readiness import one_line
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
    """Each dependency "ok", "not configured" or the error, and the process restarts per role (Redis answering);
    503 when any dependency is in error."""
    web = backends()
    checks: dict[str, str] = {}
    try:
        queries.ping_database(web.engine)
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        checks["database"] = f"error: database unreachable: {one_line(exc)}"
    output = web.settings.qc_output
    checks["qc_output"] = "ok" if output.is_dir() else f"error: QC output folder {output} does not exist"
    restarts: dict[str, int] = {}
    if web.redis is None:
        checks["redis"] = "not configured"
    else:
        try:
            web.redis.ping()
            checks["redis"] = "ok"
            restarts = restart_counts(web.redis, web.settings)[0]
        except RedisError as exc:
            checks["redis"] = f"error: Redis unreachable: {one_line(exc)}"
    healthy = all(v in ("ok", "not configured") for v in checks.values())
    return jsonify(checks | {"process_restarts": restarts, "healthy": healthy}), 200 if healthy else 503
