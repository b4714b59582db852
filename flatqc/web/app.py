"""The dashboard: nights, night, set, trends, alerts, queue; the same data as JSON under /api; /metrics; /healthz.

Server-rendered Flask + Jinja (autoescaped: header values and file names render as text), one blueprint per area in
:mod:`flatqc.web.views`. State-changing actions are POST with a per-session CSRF token, and need
``FLATQC_WEB_TOKEN`` when the server is bound to anything but loopback. Sessions are signed with one key for all web
processes (:mod:`flatqc.web.secret`). Under ``/api`` every answer is JSON, errors included; NaN and inf are sent as
null, and pages show NULL QC1 values as "—".
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Flask, abort, current_app, jsonify, render_template, request, session
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.engine import Engine
from werkzeug.exceptions import HTTPException, InternalServerError

from flatqc.queue import JobQueue
from flatqc.settings import Settings
from flatqc.web.format import finite_or_null, iso_time, same_site_path, when
from flatqc.web.metrics import registry_for
from flatqc.web.secret import web_secret_key
from flatqc.web.views import (
    EXTENSION,
    Backends,
    alerts,
    backends,
    docs,
    health,
    nights,
    qc1,
    queue,
    reviews,
    sets,
    trends,
    wants_json,
)
from qc.numbers import format_number

__all__ = ["create_app", "same_site_path"]  # same_site_path: still importable from here, where it used to live

LOOPBACK = ("127.0.0.1", "localhost", "::1")
AREAS = (nights, sets, reviews, trends, alerts, queue, health, docs, qc1)
"""The view modules, each with its ``blueprint``."""


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON with NaN and inf as null (json.dumps would write the invalid tokens NaN / Infinity) and times
    in ISO 8601."""

    default = staticmethod(iso_time)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return super().dumps(finite_or_null(obj), **kwargs)


def create_app(settings: Settings, engine: Engine, queue: JobQueue | None) -> Flask:
    """The WSGI app reading ``engine``, and queueing through ``queue`` (its Redis also feeds the queue pages; None:
    no queue), which the entry point serving the app built."""
    redis = queue.connection if queue is not None else None
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.config["SECRET_KEY"] = web_secret_key(settings.web_secret_key, settings.run_dir)
    app.extensions[EXTENSION] = Backends(settings, engine, queue, redis, registry_for(settings, engine, redis))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["needs_token"] = needs_token
    app.jinja_env.filters["number"] = format_number
    app.jinja_env.filters["when"] = when
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    app.before_request(protect_actions)
    for area in AREAS:
        app.register_blueprint(area.blueprint)
    return app


def csrf_token() -> str:
    """This session's CSRF token, created on first use (forms send it back as ``csrf_token``)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_hex(16)
    return session["csrf"]


def protect_actions() -> None:
    """Refuse a POST without this session's CSRF token, and off loopback one without ``FLATQC_WEB_TOKEN``. A POST
    with the right token in the header ``X-Flatqc-Token`` (a script's) needs no CSRF token: a page of another site
    cannot send a custom header without CORS, which the dashboard does not allow."""
    if request.method != "POST":
        return
    settings = backends().settings
    if settings.web_token and same_secret(request.headers.get("X-Flatqc-Token", ""), settings.web_token):
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token", "")
    expected = session.get("csrf", "")
    if not expected or not same_secret(sent, expected):
        abort(400, "missing or wrong CSRF token: reload the page and try again")
    if settings.web_host not in LOOPBACK:
        given = request.form.get("token") or request.headers.get("X-Flatqc-Token", "")
        if not settings.web_token or not same_secret(given, settings.web_token):
            abort(403, "this action needs FLATQC_WEB_TOKEN")


def needs_token() -> bool:
    """Whether actions need ``FLATQC_WEB_TOKEN`` (the server is bound off loopback): forms then ask for it."""
    return backends().settings.web_host not in LOOPBACK


def same_secret(given: str, expected: str) -> bool:
    """``given == expected`` in constant time, for any text (``hmac.compare_digest`` refuses non-ASCII strings)."""
    return hmac.compare_digest(given.encode(), expected.encode())


def http_error(error: HTTPException) -> Any:
    """The one error answer: JSON ``{error, status, message}`` under ``/api/``, the error page elsewhere."""
    if not wants_json():
        return render_template("error.html", error=error), error.code
    return jsonify({"error": error.name, "status": error.code, "message": error.description}), error.code


def unexpected_error(error: Exception) -> Any:
    """Under ``/api/`` a logged JSON 500; pages re-raise, to Flask's own 500 (or the traceback when testing)."""
    if not wants_json():
        raise error
    current_app.logger.exception("unhandled error on %s", request.path)
    return http_error(InternalServerError())
