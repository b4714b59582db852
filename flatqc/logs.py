"""Reporting errors in logs and on pages: :func:`one_line` of a database or Redis error, and
:class:`RateLimitedLog` for loops that must not flood the log with the same trouble."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flatqc.urls import masked

_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)\s*$")
_DBAPI_PREFIX = re.compile(r"^\((?:[\w]+\.)*\w+\)\s+")


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

    def __init__(self, logger: logging.Logger, interval_s: float,
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
