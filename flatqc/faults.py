"""Which errors are transient (retry later) and which are facts about the bytes (reject), and a test hook.

Only facts about a file's bytes (not FITS, truncated, bad layout, inconsistent set: ``qc.errors.FlatQCError``)
are rejections. A database that is locked, refusing or dropping connections, a full or failing disk and an
unreachable Redis are transient: whatever they interrupted is retried with back-off until it succeeds.
"""

from __future__ import annotations

import errno
import os
import signal

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from flatqc.logs import one_line

TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EAGAIN, errno.EDQUOT, errno.ESTALE, errno.ENOMEM,
                              errno.EBUSY, errno.ETIMEDOUT, errno.EINTR, errno.ENFILE, errno.EMFILE, errno.EROFS})
"""OS errors that say something about the machine at this moment, not about a file's bytes."""
UNREADABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
"""OS errors that say a file may not be read now (its mode, owner or ACL): they pass when an operator fixes them, so
they are retried, but only for ``unreadable_give_up_s``."""

FAULT_HOOK = "FLATQC_FAULT_KILL_AT"
"""Environment variable of the fault suite: SIGKILL this process when it reaches the named point. Unset: nothing."""
STALL_HOOK = "FLATQC_FAULT_STOP_AT"
"""Environment variable of the fault suite: SIGSTOP this process (a stalled worker, until SIGCONT) at the named
point. Unset: nothing."""


def is_transient(exc: BaseException) -> bool:
    """True for faults that pass: database unavailable or locked, Redis unreachable, disk full or failing."""
    for cause in _chain(exc):
        if isinstance(cause, OperationalError | PoolTimeoutError | RedisConnectionError | RedisTimeoutError):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        if isinstance(cause, OSError) and cause.errno in TRANSIENT_ERRNOS:
            return True
    return False


def is_unreadable(exc: BaseException) -> bool:
    """True for a permission error (EACCES, EPERM): transient, up to ``unreadable_give_up_s``."""
    return any(isinstance(cause, OSError) and cause.errno in UNREADABLE_ERRNOS for cause in _chain(exc))


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen


def describe(exc: BaseException) -> str:
    """One line a person understands, to store as a reason: the error's type and :func:`one_line` of it."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def checkpoint(point: str) -> None:
    """Die here (SIGKILL, no clean-up) if the fault suite asked for it with ``FLATQC_FAULT_KILL_AT=<point>``, or
    stall here (SIGSTOP) with ``FLATQC_FAULT_STOP_AT=<point>``."""
    if os.environ.get(FAULT_HOOK) == point:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(STALL_HOOK) == point:
        os.kill(os.getpid(), signal.SIGSTOP)
