"""Settling: a file is taken only once its size and mtime stayed the same for ``file_settle_s`` and its FITS
structure is whole (or stayed incomplete for ``truncated_after_s``: then it is taken, to be rejected as truncated).

A file its writer has closed (inotify close-after-write) or that was renamed into place is *finished*: it is taken
at the next round if its FITS structure is whole, without waiting ``file_settle_s`` (the alert is what people wait
for). Should it change afterwards, its new bytes are a new version like any re-delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flatqc.files import disk_stat
from qc.errors import FlatQCError, NotFits
from qc.fitsio import FITS_MAGIC, check_structure


@dataclass
class Noticed:
    """A file seen on disk but not yet taken: its last size and mtime, since when they are unchanged, and when
    it may be tried again after a transient fault."""

    size: int
    mtime: float
    stable_since: float
    retry_at: float = 0.0
    finished: bool = False
    """Its writer closed it or it was renamed into place since its size or mtime last changed."""


class Settler:
    """The files noticed (by events or the rescan) and not yet taken."""

    def __init__(self, settle_s: float, truncated_after_s: float, clock: Callable[[], float]) -> None:
        self.settle_s = settle_s
        self.truncated_after_s = truncated_after_s
        self.clock = clock
        self.noticed: dict[Path, Noticed] = {}
        self.failed: dict[Path, int] = {}

    def notice(self, path: Path, finished: bool = False) -> None:
        """``path`` may have appeared or changed: (re)start its clock if its size or mtime differ. ``finished``:
        an event said its writer closed it or it was renamed into place."""
        try:
            stat = disk_stat(path)
        except OSError:
            self.noticed.pop(path, None)  # gone
            return
        known = self.noticed.get(path)
        if known is None or (known.size, known.mtime) != (stat.st_size, stat.st_mtime):
            self.noticed[path] = Noticed(stat.st_size, stat.st_mtime, self.clock(), finished=finished)
        elif finished:
            known.finished = True

    def later(self, path: Path, max_delay_s: float) -> float:
        """A transient fault stopped ``path``: try it again after a back-off (2 s, doubling with each failure, at
        most ``max_delay_s``); returns that delay [s]."""
        self.failed[path] = self.failed.get(path, 0) + 1
        delay_s = min(max_delay_s, 2.0 ** self.failed[path])
        self.notice(path)
        if path in self.noticed:
            self.noticed[path].retry_at = self.clock() + delay_s
        return delay_s

    def taken(self, path: Path) -> None:
        """``path`` is recorded: forget its failures."""
        self.failed.pop(path, None)

    def ready(self) -> dict[Path, tuple[int, float]]:
        """The noticed files to take now, with the size and mtime they settled at (removed from the noticed ones)."""
        now, taken = self.clock(), {}
        for path, entry in list(self.noticed.items()):
            if entry.retry_at > now:
                continue
            self.notice(path)
            if self.noticed.get(path) is not entry:
                continue  # gone, or changed since: its clock restarted
            stable_for = now - entry.stable_since
            if stable_for < self.settle_s and not (entry.finished and whole(path)):
                continue
            if stable_for < self.truncated_after_s and not whole(path):
                continue  # maybe still being written; give it time before calling it truncated
            del self.noticed[path]
            taken[path] = (entry.size, entry.mtime)
        return taken


def whole(path: Path) -> bool:
    """True if the file's FITS structure is complete (every HDU's data present), or if it can never be (its first
    bytes are there and are not a FITS signature: no need to wait for more); True for anything that is not a
    regular file (a FIFO must never be opened: intake records why it is not used)."""
    if path.is_symlink() or not path.is_file():
        return True  # symlinks are judged by intake (one leading out of the tree is never read)
    try:
        check_structure(path)
    except NotFits:
        return _never_fits(path)  # bytes that can never become FITS need no more time; an empty file may
    except (FlatQCError, OSError):
        return False
    return True


def _never_fits(path: Path) -> bool:
    """True if the first 9 bytes are written (none of them NUL, as in a preallocated file) and are not FITS's."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(FITS_MAGIC))
    except OSError:
        return False
    return len(head) == len(FITS_MAGIC) and b"\0" not in head and head != FITS_MAGIC
