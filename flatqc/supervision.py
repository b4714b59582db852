"""Supervision by ``flatqc up``: one holder per run folder, restarts with back-off that give up loudly, and the
restart counts it keeps in Redis for ``flatqc status``, ``/queue``, ``/healthz`` and ``/metrics`` (other
processes)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis

from flatqc.settings import Settings

START_WINDOW_S = 15.0
"""A process that dies this soon after it was started failed *at start* [s]; later deaths are crashes of a running
process (restarted at once, and its count of failures in a row starts again)."""
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 60.0
"""After the second failure at start in a row, wait 1 s before starting again, doubled after each further one, at
most 60 s. The first restart is immediate."""
ROLES = ("worker",)
"""Roles of the processes ``flatqc up`` restarts (label ``role`` of ``flatqc_process_restarts_total``)."""


class RunFolderTaken(Exception):
    """Another live ``flatqc up`` holds the run folder."""


class RunLock:
    """An exclusive ``flock`` on ``<run_dir>/up.lock``, held while the process lives: the kernel releases it when
    the holder ends, however it ends (SIGKILL too), so a stale file never blocks. Not inherited by children."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "up.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunFolderTaken` naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunFolderTaken(f"another flatqc up (pid {holder}) is running on the run folder {self.path.parent}; "
                                 "stop it first, or give this one its own FLATQC_RUN_DIR") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the lock
            self.fd = None


class GaveUp(Exception):
    """A supervised process failed at start too many times in a row; the message says which and why."""


@dataclass
class StartFailures:
    """Back-off of one supervised process: its failures at start in a row and when it may be started again."""

    limit: int
    """Give up at this many failures at start in a row (``FLATQC_MAX_START_FAILURES``)."""
    in_a_row: int = 0
    started_at: float = 0.0
    restart_at: float | None = None
    """When the dead process is due to start again (monotonic), None while it runs."""

    def started(self, now: float) -> None:
        self.started_at, self.restart_at = now, None

    def died(self, now: float) -> bool:
        """Count a death at ``now`` and schedule the restart; False when it is time to give up."""
        self.in_a_row = self.in_a_row + 1 if now - self.started_at < START_WINDOW_S else 0
        if self.in_a_row >= self.limit:
            return False
        delay = 0.0 if self.in_a_row <= 1 else min(RESTART_BACKOFF_S * 2 ** (self.in_a_row - 2),
                                                     RESTART_BACKOFF_MAX_S)
        self.restart_at = now + delay
        return True


def restarts_key(settings: Settings) -> str:
    """Redis hash of the restart counts: field ``<role>`` = count, ``<role>:last`` = when and why, the last one."""
    return f"{settings.queue_name}:restarts"


def record_restart(redis: Redis, settings: Settings, role: str, why: str) -> None:
    """Count one restart of a ``role`` process, remembering when and why."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with redis.pipeline() as pipe:
        pipe.hincrby(restarts_key(settings), role, 1)
        pipe.hset(restarts_key(settings), f"{role}:last", f"{now} {why}")
        pipe.execute()


def restart_counts(redis: Redis, settings: Settings) -> tuple[dict[str, int], str | None]:
    """Restarts per role (every role of ROLES, 0 when none) and the description of the newest one (None: none)."""
    stored = {_text(k): _text(v) for k, v in redis.hgetall(restarts_key(settings)).items()}
    counts = {role: int(stored.get(role, 0)) for role in ROLES}
    last = max((v for k, v in stored.items() if k.endswith(":last")), default=None)  # ISO times sort
    return counts, last


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
