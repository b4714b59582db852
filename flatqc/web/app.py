"""The dashboard: nights, night, set, trends, alerts, queue; the same data as JSON under /api; /metrics; /healthz.

Server-rendered Flask + Jinja (autoescaped: header values and file names render as text). State-changing actions are
POST with a per-session CSRF token, and need ``FLATQC_WEB_TOKEN`` when the server is bound to anything but loopback.
Sessions are signed with one key for all web processes (:mod:`flatqc.web.secret`). Under ``/api`` every answer is
JSON, errors included; NaN and inf are sent as null, and pages show NULL QC1 values as "—".
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import numpy as np
from flask import (
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
    url_for,
)
from flask.json.provider import DefaultJSONProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis import Redis
from redis.exceptions import RedisError
from rq.registry import FailedJobRegistry
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, InternalServerError

from flatqc import ledger, lifecycle
from flatqc.db import ALERT, QC1_TABLES, WARNING, alerts
from flatqc.queue import job_queue, pictures_queue
from flatqc.readiness import one_line
from flatqc.settings import Settings
from flatqc.status import nights, queue_status
from flatqc.trend_data import AXIS_LABELS, COUNTS, TREND_REPORTS, load_trends, report_applies, setting_keys
from flatqc.web import queries
from flatqc.web.metrics import registry_for
from flatqc.web.secret import web_secret_key
from flatqc.web.svg import trend_svg
from qc.profiles import PROFILES, profile_for_table
from worker.jobs import enqueue_set

LOOPBACK = ("127.0.0.1", "localhost", "::1")
NIGHTS_SHOWN = 100
"""Nights listed on the front page unless ``?limit=all``."""


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or inf float (nested in dicts, lists, tuples) replaced by None: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def iso_time(value: Any) -> Any:
    """Times as ISO 8601 (the ledger's and rq's naive times are UTC: ``Z``); anything else as Flask does."""
    if isinstance(value, datetime):
        return value.isoformat() + ("Z" if value.tzinfo is None else "")
    if isinstance(value, date):
        return value.isoformat()
    return DefaultJSONProvider.default(value)


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with NaN and inf as null (json.dumps would write the invalid tokens NaN / Infinity) and times
    in ISO 8601."""

    default = staticmethod(iso_time)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(finite_or_null(obj), **kwargs)


def when(value: Any) -> str:
    """A time on a page: UTC to the second (no microseconds); an rq ISO string likewise; nothing as ""."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.removesuffix("Z"))
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M:%S")


def number(value: Any, pattern: str = "%.4g") -> str:
    """A QC1 value for a page: NULL, NaN and inf as "—", a count as it is, otherwise ``pattern % value``."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return str(value) if isinstance(value, int) else pattern % value


def same_site_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (``/alerts?state=open``), else None: it must start with one "/"
    (not ``//host``, protocol-relative) and hold no backslash or control character (browsers read ``/\\host`` and
    ``/<tab>/host`` as ``//host``)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in target):
        return None
    return target


def create_app(settings: Settings, engine: Engine, redis: Redis | None) -> Flask:
    """The WSGI app reading ``engine`` (and ``redis`` for the queue pages, if given)."""
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.config["SECRET_KEY"] = web_secret_key(settings.web_secret_key, settings.run_dir)
    metrics_registry = registry_for(settings, engine, redis)

    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_hex(16)
        return session["csrf"]

    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.filters["number"] = number
    app.jinja_env.filters["when"] = when

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        if not request.path.startswith("/api/"):
            return render_template("error.html", error=error), error.code
        return jsonify({"error": error.name, "status": error.code, "message": error.description}), error.code

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Any:
        if not request.path.startswith("/api/"):
            raise error  # pages: Flask's own 500 (or the traceback when testing)
        app.logger.exception("unhandled error on %s", request.path)
        return http_error(InternalServerError())

    @app.before_request
    def protect_actions() -> None:
        if request.method != "POST":
            return
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent, expected):
            abort(400, "missing or wrong CSRF token: reload the page and try again")
        if settings.web_host not in LOOPBACK:
            given = request.form.get("token") or request.headers.get("X-Flatqc-Token", "")
            if not settings.web_token or not hmac.compare_digest(given, settings.web_token):
                abort(403, "this action needs FLATQC_WEB_TOKEN")

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    def page_and_api(rule: str, api_rule: str | None = None) -> Callable[[Callable], Callable]:
        """Serve a view as a page at ``rule`` (endpoint = its name) and as JSON at ``/api<rule>`` (``api_<name>``)."""

        def register(view: Callable) -> Callable:
            app.add_url_rule(rule, view.__name__, view)
            app.add_url_rule(api_rule or f"/api{rule}", f"api_{view.__name__}", view)
            return view

        return register

    # -- pages and their JSON twins ---------------------------------------------------------------------------------
    @page_and_api("/", "/api/nights")
    def nights_page() -> Any:
        limit_arg = request.args.get("limit", "all" if wants_json() else str(NIGHTS_SHOWN))
        if limit_arg != "all" and not limit_arg.isdigit():
            abort(400, "limit must be a whole number or 'all'")
        everything = nights(engine)
        summary = [vars(n) for n in (everything if limit_arg == "all" else everything[:int(limit_arg)])]
        with engine.connect() as conn:
            open_rows = conn.execute(select(alerts.c.night, func.coalesce(alerts.c.severity, ALERT), func.count())
                                     .where(alerts.c.state == "open").group_by(alerts.c.night, alerts.c.severity))
            open_counts = {(night, severity): count for night, severity, count in open_rows}
        for entry in summary:
            entry["open_alerts"] = open_counts.get((entry["night"], ALERT), 0)
            entry["open_warnings"] = open_counts.get((entry["night"], WARNING), 0)
        if wants_json():
            return jsonify(summary)
        in_progress = any(n["sets"].get(s) for n in summary[:1] for s in ("queued", "running", "waiting"))
        return render_template("nights.html", nights=summary, refresh=in_progress, total=len(everything))

    @page_and_api("/nights/<night>")
    def night_page(night: str) -> Any:
        detail = queries.night_detail(engine, night, settings.qc_config)
        if detail is None:
            abort(404, f"no night {night}")
        if wants_json():
            return jsonify(detail)
        return render_template("night.html", **detail)

    @page_and_api("/sets/<set_id>")
    def set_page(set_id: str) -> Any:
        detail = queries.set_detail(engine, set_id, settings.qc_config)
        if detail is None:
            abort(404, f"no set {set_id}")
        if wants_json():
            return jsonify(detail)
        return render_template("set.html", thresholds=settings.qc_config(detail["set"]["profile"] or "crires"),
                               **detail)

    @page_and_api("/trends")
    def trends_page() -> Any:
        table_name = request.args.get("table", "crires_flat")
        if table_name not in QC1_TABLES:
            abort(400, f"table must be one of {sorted(QC1_TABLES)}")
        days_arg = request.args.get("days", "90")
        if days_arg != "all" and not days_arg.isdigit():
            abort(400, "days must be a whole number or 'all'")
        key = request.args.get("key") or None
        table = QC1_TABLES[table_name]
        config = settings.qc_config(profile_for_table(table_name).name)
        columns = sorted({c for parameters in TREND_REPORTS.values() for c in parameters})
        trends = load_trends(engine, table, columns, key, None if days_arg == "all" else int(days_arg))
        charts = [{"report": report, "key": k, "parameter": parameter,
                   "limits": queries.trend_limits(config, k, parameter), "series": trends[k][parameter]}
                  for report, parameters in TREND_REPORTS.items() for k in sorted(trends)
                  if report_applies(report, k) for parameter in parameters]
        if wants_json():
            return jsonify([c | {"series": [{"detector": s.label, "mjd_obs": s.mjd.tolist(),
                                             "values": [None if np.isnan(v) else v for v in s.values.tolist()]}
                                            for s in c["series"]]} for c in charts])
        for chart in charts:
            chart["svg"] = trend_svg(chart["series"], chart["limits"], f"{chart['parameter']} ({chart['key']})",
                                     AXIS_LABELS[chart["parameter"]], chart["parameter"] in COUNTS,
                                     link=lambda set_id: url_for("set_page", set_id=set_id))
        instruments = [(p.table, p.title) for p in PROFILES.values()]
        return render_template("trends.html", charts=charts, days=days_arg, table=table_name, key=key,
                               keys=setting_keys(engine, table), instruments=instruments,
                               instrument=dict(instruments)[table_name], reports=list(TREND_REPORTS))

    @page_and_api("/alerts")
    def alerts_page() -> Any:
        state = request.args.get("state") or None
        severity = request.args.get("kind") or None
        if severity not in (None, ALERT, WARNING):
            abort(400, f"kind must be {ALERT} or {WARNING}")
        rows = queries.alert_list(engine, state, severity)
        if wants_json():
            return jsonify(rows)
        return render_template("alerts.html", alerts=rows, state=state, kind=severity)

    @page_and_api("/queue")
    def queue_page() -> Any:
        status = vars(queue_status(settings, redis))
        jobs = queries.queue_jobs(engine, [job_queue(settings, redis), pictures_queue(settings, redis)]) \
            if redis is not None and status["reachable"] else {}
        if wants_json():
            return jsonify(status | {f"{state}_jobs": listed for state, listed in jobs.items()})
        return render_template("queue.html", status=status, jobs=jobs)

    # -- actions ------------------------------------------------------------------------------------------------------
    @app.post("/alerts/<int:alert_id>/ack")
    def ack_alert(alert_id: int) -> Any:
        by = (request.form.get("by") or "").strip() or "anonymous"
        with engine.begin() as conn:
            if not lifecycle.acknowledge(conn, alert_id, by, request.form.get("comment") or None):
                abort(409, f"alert #{alert_id} is not open")
        flash(f"#{alert_id} acknowledged by {by}.", "done")
        return redirect(same_site_path(request.form.get("next")) or url_for("alerts_page"))

    @app.post("/sets/<set_id>/reprocess")
    def reprocess(set_id: str) -> Any:
        if redis is None:
            abort(503, "no Redis configured: cannot queue")
        detail = queries.set_detail(engine, set_id, settings.qc_config)
        if detail is None:
            abort(404, f"no set {set_id}")
        with engine.begin() as conn:
            row = ledger.set_row(conn, detail["set"]["version"])
            job_id = lifecycle.requeue(conn, row, "reprocess requested in the dashboard", new_job=True)
        if job_id is not None:
            enqueue_set(job_queue(settings, redis), row.version, settings, job_id)
            flash(f"Set {set_id} queued for reprocessing (job {job_id}); its state, QC1 rows and pictures are "
                  "replaced when the job finishes.", "done")
        else:
            flash(f"Set {set_id} cannot be queued again (state {row.state}).", "problem")
        return redirect(url_for("set_page", set_id=set_id))

    @app.post("/queue/failed/<job_id>/retry")
    def retry_job(job_id: str) -> Any:
        if redis is None:
            abort(503)
        for queue in (job_queue(settings, redis), pictures_queue(settings, redis)):
            registry = FailedJobRegistry(queue=queue)
            if job_id in registry:
                registry.requeue(job_id)
                flash(f"Job {job_id} queued again.", "done")
        return redirect(url_for("queue_page"))

    # -- files, metrics, health ------------------------------------------------------------------------------------
    @app.get("/files/<path:relative>")
    def output_file(relative: str) -> Any:
        return send_from_directory(settings.qc_output.resolve(), relative)  # safe_join: no way out of QC_OUTPUT

    @app.get("/metrics")
    def metrics() -> Any:
        return generate_latest(metrics_registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}

    @app.get("/healthz")
    def healthz() -> Any:
        checks: dict[str, str] = {}
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - report, do not crash
            checks["database"] = f"error: database unreachable: {one_line(exc)}"
        output = settings.qc_output
        checks["qc_output"] = "ok" if output.is_dir() else f"error: QC output folder {output} does not exist"
        if redis is None:
            checks["redis"] = "not configured"
        else:
            try:
                redis.ping()
                checks["redis"] = "ok"
            except RedisError as exc:
                checks["redis"] = f"error: Redis unreachable: {one_line(exc)}"
        healthy = all(v in ("ok", "not configured") for v in checks.values())
        return jsonify(checks | {"healthy": healthy}), 200 if healthy else 503

    return app
