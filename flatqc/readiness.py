"""Waiting at start for a database or Redis that is not ready yet, and reporting their errors in one line.

Every long-running process (watcher, workers, dashboard, ``flatqc up``) calls :func:`wait_for_database` and
:func:`wait_for_redis` at start instead of connecting once and dying: processes may be started in any order, before
PostgreSQL or Redis accept connections. While a service is unreachable they log one line, then at most once a minute,
and retry with capped exponential back-off. The helpers :func:`one_line` and :class:`RateLimitedLog` are meant for
anyone who reports such errors (status, pages, loops that must not flood the log).
"""

from __future__ import annotations

import logging
import re
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
from flatqc.queue import redis_connection
from flatqc.urls import masked

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
"""Retry delays while waiting: 0.5 s, doubled after every failure, at most 10 s."""

REPEAT_LOG_S = 60.0
"""While still waiting, the "unreachable" line is repeated at most this often [s]."""

REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
"""Redis errors that mean "not reachable (yet)" (a loading server and a wrong password are ConnectionErrors too)."""

_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)\s*$")
_DBAPI_PREFIX = re.compile(r"^\((?:[\w]+\.)*\w+\)\s+")


class StoppedWaiting(Exception):
    """Raised by the ``wait_for_*`` functions when their ``stop`` event is set before the service was reached."""


def stop_on_signals() -> threading.Event:
    """An event that SIGTERM and SIGINT set (call from the main thread): a process's clean stop, also as PID 1 of
    a container, where a signal without a handler is ignored."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def one_line(exc: BaseException) -> str:
    """A human line for a database or Redis error: the first line of ``str(exc)``, without SQLAlchemy's
    ``(psycopg.OperationalError)`` prefix and ``(Background on this error at: ...)`` suffix, runs of white space
    collapsed.

    A first line that only announces what follows (ends with ``:``) gets the next line appended. Falls back to the
    exception's class name when the message is empty. Passwords of URLs in it are masked.
    """
    lines = [line.strip() for line in str(exc).splitlines()]
    lines = [_BACKGROUND.sub("", line) for line in lines if line and not _BACKGROUND.fullmatch(line)]
    if not lines:
        return type(exc).__name__
    first = _DBAPI_PREFIX.sub("", lines[0]).strip()
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1]}"
    return masked(" ".join(first.split())) or type(exc).__name__


class RateLimitedLog:
    """Log messages under a key at most once per ``interval_s``; the next one that goes out says how many of that
    key were suppressed in between. Thread-safe. Use one key per kind of trouble (e.g. ``"database"``).

    >>> limited = RateLimitedLog(logging.getLogger("x"), 60)
    >>> limited.log("database", logging.WARNING, "database unreachable (%s)", "refused")  # logged
    True
    >>> limited.log("database", logging.WARNING, "database unreachable (%s)", "refused")  # suppressed
    False
    """

    def __init__(self, logger: logging.Logger, interval_s: float = REPEAT_LOG_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, key: str, level: int, msg: str, *args: Any, **kwargs: Any) -> bool:
        """Log ``msg % args`` at ``level`` unless ``key`` was logged less than ``interval_s`` ago. True if logged."""
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            msg = f"{msg} ({suppressed} more like it not logged since the last)"
        self.logger.log(level, msg, *args, **kwargs)
        return True

    def seen(self, key: str) -> bool:
        """Whether ``key`` was logged (and not cleared since)."""
        with self._lock:
            return key in self._last

    def clear(self, key: str) -> int:
        """Forget ``key`` (the trouble is over): its next message goes out at once. Returns the suppressed count."""
        with self._lock:
            self._last.pop(key, None)
            return self._suppressed.pop(key, 0)


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
