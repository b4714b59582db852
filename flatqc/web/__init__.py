"""The dashboard (Flask): pages, JSON API, Prometheus metrics, health check; served by waitress."""

from __future__ import annotations

import threading

from flask import Flask
from sqlalchemy.engine import Engine
from waitress import wasyncore
from waitress.server import create_server

from flatqc.queue import JobQueue
from flatqc.settings import Settings
from flatqc.web.app import create_app

WEB_THREADS = 8
"""Requests served at once by one web process."""


class WebServer:
    """A waitress server answering from a background thread until :meth:`shutdown`."""

    def __init__(self, app: Flask, host: str, port: int) -> None:
        self._sockets: dict = {}
        self._server = create_server(app, map=self._sockets, host=host, port=port, threads=WEB_THREADS,
                                     ident="flatqc")
        self.server_port: int = self._server.effective_port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="web", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and self._sockets:
            wasyncore.loop(timeout=0.2, map=self._sockets, count=1)
        wasyncore.close_all(self._sockets)
        self._server.task_dispatcher.shutdown()

    def shutdown(self) -> None:
        """Stop listening, close every connection, end the worker threads."""
        self._stop.set()
        self._thread.join(10)


def start_web(settings: Settings, engine: Engine, queue: JobQueue | None, host: str | None = None,
              port: int | None = None) -> WebServer:
    """Serve the dashboard from a background thread; ``server.shutdown()`` stops it."""
    return WebServer(create_app(settings, engine, queue), host or settings.web_host,
                     settings.web_port if port is None else port)
