"""Folders the service must create or write (watched roots, the QC output): a real probe, a message that says how
to fix what fails, and waiting until it is fixed instead of dying (a container would restart in a loop).

The message names the folder, its nearest existing ancestor with owner and mode, and the uid this process runs as,
e.g. ``cannot write /data/qc: /data/qc is owned by uid 0 (drwxr-xr-x), we run as uid 1000: fix with chown -R
1000 /data/qc``.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from flatqc.logs import RateLimitedLog
from flatqc.readiness import StoppedWaiting

log = logging.getLogger(__name__)

RETRY_S = 5.0
"""A folder that cannot be created or written is tried again this often (the probe is cheap) [s]."""
REPEAT_LOG_S = 600.0
"""While waiting, its message is repeated at most this often [s]."""


def folder_problem(folder: Path, write: bool, create: bool = True) -> str | None:
    """None if ``folder`` exists (made, with its parents, when ``create``) and, when ``write``, a file can be
    created and deleted in it; else one line saying what failed and how to fix it."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            return f"{folder} does not exist"
        if write:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".flatqc-write-probe-"):
                pass
    except OSError as exc:
        return _explain(folder, exc, "write" if write and folder.is_dir() else "create")
    return None


def _explain(folder: Path, exc: OSError, verb: str) -> str:
    existing = next((p for p in (folder, *folder.parents) if p.is_dir()), None)
    if not isinstance(exc, PermissionError) or existing is None:
        return f"cannot {verb} {folder}: {exc.strerror or exc}"
    owner = existing.stat()
    uid = os.geteuid()
    return (f"cannot {verb} {folder}: {existing} is owned by uid {owner.st_uid} ({stat.filemode(owner.st_mode)}), "
            f"we run as uid {uid}: fix with chown -R {uid} {existing}")


def wait_for_folders(folders: Sequence[Path], write: bool, stop: threading.Event | None = None) -> None:
    """Return once every folder passes :func:`folder_problem`; until then log the first problem (and how many
    more) once, again every ``REPEAT_LOG_S``, and try again every ``RETRY_S``. Raises :class:`StoppedWaiting` when
    ``stop`` is set first."""
    limited = RateLimitedLog(log, REPEAT_LOG_S)
    stop = stop or threading.Event()
    waited = False
    while problems := [p for p in (folder_problem(f, write) for f in folders) if p]:
        waited = True
        more = f" (and {len(problems) - 1} more folders)" if len(problems) > 1 else ""
        limited.log(problems[0], logging.ERROR, "%s%s; waiting", problems[0], more)
        if stop.wait(RETRY_S):
            raise StoppedWaiting(f"stopped while waiting for {', '.join(map(str, folders))}")
    if waited:
        log.warning("%s: %s now; going on", ", ".join(map(str, folders)), "writable" if write else "in place")
