"""Child processes that end with their parent, however it ends, and the record that finds them if they did not.

``flatqc up`` starts each child (its Redis, the workers) through :func:`tied_to_parent`: a short Python step
(``python -P -m flatqc.children <parent pid> <program> <args>``) asks Linux to send it SIGTERM when the parent
dies (``prctl(PR_SET_PDEATHSIG)``, kept across ``exec``) and then becomes the program. No ``preexec_fn`` (unsafe
with threads). The signal follows the *thread* that started the child, so children are started from the thread
that lives as long as the service (``flatqc up``'s main thread).

Where that is not available (not Linux), or for a child that survived anyway, :class:`ChildRecords` keeps each
child's pid and start time in the run folder; the next ``flatqc up`` on that folder ends those still running. The
start time (``/proc/<pid>/stat``) makes sure the pid is still the same process, not a later one given its number.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal this process gets when its parent (thread) exits (linux/prctl.h)."""
LEFTOVER_GRACE_S = 10.0
"""A leftover child asked to stop (SIGTERM) is killed (SIGKILL) if still there after this long [s]."""


def tied_to_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that the process gets SIGTERM when this process dies (see the module's docstring)."""
    return [sys.executable, "-P", "-m", "flatqc.children", str(os.getpid()), *argv]


def die_with_parent(parent_pid: int) -> bool:
    """Ask for SIGTERM when the parent dies; False if the parent is gone already (or prctl is missing)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    return os.getppid() == parent_pid  # it may have died before prctl: then nobody would signal us


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), None if no such live process (or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": comm may hold spaces and parentheses
    return None if fields[0] in ("Z", "X") else int(fields[19])  # state, then starttime is field 22 of the line


@dataclass(frozen=True)
class Child:
    role: str
    pid: int
    started: int | None


class ChildRecords:
    """The children of one ``flatqc up``, in ``<run_dir>/children.json``, for the next one to end if they outlived
    it. Only the holder of the run folder's lock writes or reads it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / "children.json"

    def write(self, children: dict[str, int]) -> None:
        """Record the children now running (role label -> pid); written whole, atomically."""
        records = [asdict(Child(role, pid, start_time(pid))) for role, pid in children.items()]
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(records))
        partial.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def end_leftovers(self) -> list[Child]:
        """End (SIGTERM, then SIGKILL after LEFTOVER_GRACE_S) every recorded child that still runs; returns them."""
        try:
            recorded = [Child(**entry) for entry in json.loads(self.path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        alive = [c for c in recorded if c.started is not None and start_time(c.pid) == c.started]
        for child in alive:
            log.warning("ending %s (pid %d), left running by a flatqc up that did not stop cleanly",
                        child.role, child.pid)
            os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + LEFTOVER_GRACE_S
        while time.monotonic() < deadline and any(start_time(c.pid) == c.started for c in alive):
            time.sleep(0.1)
        for child in alive:
            if start_time(child.pid) == child.started:
                os.kill(child.pid, signal.SIGKILL)
        self.clear()
        return alive


def main() -> None:
    """``python -P -m flatqc.children <parent pid> <program> <args>``: tie to the parent, become the program."""
    parent, argv = int(sys.argv[1]), sys.argv[2:]
    if not die_with_parent(parent):
        sys.exit(f"parent {parent} is gone: not starting {argv[0]}")
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
