"""Waiting at start for a database or Redis that is not ready yet.

Every long-running process (watcher, workers, dashboard, ``flatqc up``) calls :func:`wait_for_database` and
:func:`wait_for_redis` at start instead of connecting once and dying: processes may be started in any order, before
PostgreSQL or Redis accept connections. While a service is unreachable they log one line, then at most once a minute,
and retry with capped exponential back-off (their errors in one line, through :mod:`flatqc.logs`).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from flatqc.db import create_schema, make_engine
from flatqc.logs import RateLimitedLog, one_line
from flatqc.queue import redis_connection

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
"""Retry delays while waiting: 0.5 s, doubled after every failure, at most 10 s."""

REPEAT_LOG_S = 60.0
"""While still waiting, the "unreachable" line is repeated at most this often [s]."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis errors that mean "not reachable (yet)" (a loading server and a wrong password are ConnectionErrors too)."""


class StoppedWaiting(Exception):
    """Raised by the ``wait_for_*`` functions when their ``stop`` event is set before the service was reached."""


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread): a process's clean stop, also as PID 1 of
    a container, where a signal without a handler is ignored."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached (yet), as opposed to a bug or a schema problem."""
    if isinstance(exc, OperationalError | InterfaceError | OSError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def redis_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means Redis cannot be reached (yet)."""
    return isinstance(exc, REDIS_ERRORS)


def _wait(what: str, attempt: Callable[[], Any], unreachable: Callable[[BaseException], bool],
          stop: threading.Event | None, on_failure: Callable[[], None] = lambda: None) -> Any:
    """Call ``attempt`` until it returns, waiting with back-off while it raises errors ``unreachable`` accepts."""
    limited = RateLimitedLog(log, REPEAT_LOG_S)
    started = time.monotonic()
    delay = BACKOFF_MIN_S
    while True:
        if stop is not None and stop.is_set():
            raise StoppedWaiting(f"stopped while waiting for {what}")
        try:
            result = attempt()
        except Exception as exc:
            if not unreachable(exc):
                raise
            on_failure()
            limited.log(what, logging.WARNING, "%s unreachable (%s); waiting", what, one_line(exc))
            if stop is not None:
                if stop.wait(delay):
                    raise StoppedWaiting(f"stopped while waiting for {what}") from exc
            else:
                time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)
            continue
        if limited.seen(what):
            log.warning("%s reachable after %.0f s; going on", what, time.monotonic() - started)
        return result


def wait_for_database(url: str, stop: threading.Event | None = None) -> Engine:
    """An engine for ``url`` with the schema in place (created or migrated under the schema lock, see
    :func:`flatqc.db.create_schema`), waiting as long as it takes for the database to accept connections.

    Raises :class:`StoppedWaiting` when ``stop`` is set first; errors that are not about reaching the database
    (permissions, bugs) are raised at once.
    """
    engine = make_engine(url)

    def attempt() -> Engine:
        create_schema(engine)
        return engine

    try:
        return _wait("database", attempt, database_unreachable, stop, on_failure=engine.dispose)
    except BaseException:
        engine.dispose()
        raise


def wait_for_redis(url: str, stop: threading.Event | None = None) -> Redis:
    """A client for ``url`` (:func:`flatqc.queue.redis_connection`) once Redis answers PING, waiting as long as it
    takes. Raises :class:`StoppedWaiting` when ``stop`` is set first."""
    client = redis_connection(url)

    def attempt() -> Redis:
        client.ping()
        return client

    return _wait("Redis", attempt, redis_unreachable, stop, on_failure=client.connection_pool.disconnect)
