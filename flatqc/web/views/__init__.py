"""The dashboard's views, one blueprint per area, and what they share: the app's backends, where JSON is answered,
and ``page_and_api`` (a page and its ``/api`` JSON twin from one view)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, current_app, request
from prometheus_client import CollectorRegistry
from redis import Redis
from sqlalchemy.engine import Engine

from flatqc.queue import JobQueue
from flatqc.settings import Settings

View = Callable[..., Any]
EXTENSION = "flatqc"
"""Key of :class:`Backends` in ``app.extensions``."""


@dataclass(frozen=True)
class Backends:
    """What the views of one app use: settings, the ledger, the queues and their Redis (None: no queue) and the
    metrics registry."""

    settings: Settings
    engine: Engine
    queue: JobQueue | None
    redis: Redis | None
    metrics: CollectorRegistry


def backends() -> Backends:
    """The backends of the app serving the current request."""
    return current_app.extensions[EXTENSION]


def wants_json() -> bool:
    """Whether the current request is under ``/api/``, where every answer is JSON, errors included."""
    return request.path.startswith("/api/")


def page_and_api(blueprint: Blueprint, rule: str, api_rule: str | None = None,
                 methods: Sequence[str] = ("GET",)) -> Callable[[View], View]:
    """Serve a view as a page at ``rule`` (endpoint = its name) and as JSON at ``/api<rule>`` (``api_<name>``), for
    the HTTP ``methods``."""

    def register(view: View) -> View:
        blueprint.add_url_rule(rule, view.__name__, view, methods=list(methods))
        blueprint.add_url_rule(api_rule or f"/api{rule}", f"api_{view.__name__}", view, methods=list(methods))
        return view

    return register
