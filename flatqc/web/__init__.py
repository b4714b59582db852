"""The dashboard (Flask): pages, JSON API, Prometheus metrics, health check."""

from __future__ import annotations

import threading

from redis import Redis
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, make_server

from flatqc.settings import Settings
from flatqc.web.app import create_app


def start_web(settings: Settings, engine: Engine, redis: Redis | None, host: str | None = None,
              port: int | None = None) -> BaseWSGIServer:
    """Serve the dashboard from a background thread (threaded WSGI server); ``server.shutdown()`` stops it."""
    server = make_server(host or settings.web_host, settings.web_port if port is None else port,
                         create_app(settings, engine, redis), threaded=True)
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    return server
