"""Intake: hash and classify settled files, then record them in the ledger in one transaction per batch.

A small file is read once: its sha256 and its classification come from the same bytes.

Facts about the bytes (not FITS, truncated, not a flat product) are recorded as rejected or ignored with their
reason; a transient fault (database, disk) leaves the file unrecorded, to be taken again with back-off; so does a
permission error (EACCES, EPERM), for ``unreadable_give_up_s`` (then rejected), and it never replaces the version the
ledger has of an unchanged file; nothing a single path does can stop the others.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from flatqc import ledger
from flatqc.db import utcnow
from flatqc.faults import checkpoint, describe, is_transient, is_unreadable
from flatqc.files import disk_stat, path_text, sha256_file, unusable_reason
from flatqc.lifecycle import files as file_lifecycle
from flatqc.lifecycle.files import FileRecord, FileState
from flatqc.settings import Settings
from qc.errors import FlatQCError, NotAFlatProduct
from qc.fitsio import QUICK_MAX_BYTES, FrameInfo, inspect_file
from qc.sets import night_of, set_id_for

log = logging.getLogger(__name__)

FRAME_CACHE_SIZE = 20_000
"""Classified headers kept in memory (a few hundred bytes each); beyond that the cache starts again."""


class FrameCache:
    """Classified headers by (ledger path, sha256), so grouping a night does not read every header again."""

    def __init__(self, window_starty_defaults: dict[str, int]) -> None:
        self.window_starty_defaults = window_starty_defaults
        self.frames: dict[tuple[str, str], FrameInfo] = {}

    def put(self, path: str, sha: str, frame: FrameInfo) -> None:
        if len(self.frames) > FRAME_CACHE_SIZE:
            self.frames.clear()
        self.frames[(path, sha)] = frame

    def get(self, path: str, sha: str, file: Path) -> FrameInfo | None:
        """The frame of this file version; read again if not cached (None if it no longer reads)."""
        key = (path, sha)
        if key not in self.frames:
            try:
                self.put(path, sha, inspect_file(file, self.window_starty_defaults))
            except (OSError, FlatQCError):
                return None
        return self.frames[key]


@dataclass
class IntakeResult:
    """What one batch did: nights whose grouping changed, and paths to try again later (transient faults)."""

    nights: set[str] = field(default_factory=set)
    retry: dict[Path, str] = field(default_factory=dict)
    changing: list[Path] = field(default_factory=list)
    """Paths that changed while they were read: back to settling, nothing recorded."""
    unreadable: set[Path] = field(default_factory=set)
    """Paths (among ``retry``) that may not be read (EACCES, EPERM)."""


def examine(path: Path, root: Path, settings: Settings,
            settled: tuple[int, float] | None = None) -> tuple[FileRecord, FrameInfo | None] | None:
    """What the file at ``path`` is, as a ledger record (and its frame if it is a flat product or raw); None if it
    vanished. ``settled``: the size and mtime it had when it settled, if it did. Raises :class:`Changing` if it
    is no longer what settled or changes while read (e.g. a re-delivery truncated it), else only transient
    errors."""
    text = path_text(path)
    reason = unusable_reason(path, root)
    if reason is not None:
        try:
            own = disk_stat(path)
        except FileNotFoundError:
            return None
        sha = "symlink" if path.is_symlink() else "not-regular"
        return FileRecord(text, own.st_size, own.st_mtime, sha, FileState.IGNORED, reason,
                          night=night_of(path, None)), None
    try:
        stat = path.stat()
        if settled is not None and (stat.st_size, stat.st_mtime) != settled:
            raise Changing("it changed after it settled")
        data = _read_small(path, stat.st_size)
        sha = hashlib.sha256(data).hexdigest() if data is not None else sha256_file(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno is not None and is_transient(exc):
            raise
        unreadable = FileRecord(text, 0, 0.0, "unreadable", FileState.REJECTED,
                                f"cannot be read: {exc.strerror or exc}", night=night_of(path, None))
        if is_unreadable(exc):
            raise Unreadable(unreadable, path) from exc
        return unreadable, None
    plain: dict[str, Any] = {"path": text, "size": stat.st_size, "mtime": stat.st_mtime, "sha256": sha}
    try:
        frame = inspect_file(path, settings.window_starty_defaults(), data)
    except NotAFlatProduct as exc:
        return FileRecord(**plain, state=FileState.IGNORED, reason=str(exc), night=night_of(path, None)), None
    except FlatQCError as exc:
        return FileRecord(**plain, state=FileState.REJECTED, reason=str(exc), night=night_of(path, None)), None
    except OSError as exc:
        if is_transient(exc):
            raise
        if is_unreadable(exc):
            raise Unreadable(FileRecord(text, 0, 0.0, "unreadable", FileState.REJECTED,
                                        f"cannot be read: {exc.strerror or exc}", night=night_of(path, None)),
                             path) from exc
        return FileRecord(**plain, state=FileState.REJECTED, reason=f"cannot be read: {describe(exc)}",
                          night=night_of(path, None)), None
    finally:
        _unchanged_since(path, stat)
    if settings.instrument not in ("auto", frame.profile):
        return FileRecord(**plain, state=FileState.IGNORED, night=night_of(path, None),
                          reason=f"instrument {frame.profile} not handled (FLATQC_INSTRUMENT)"), None
    return FileRecord(**plain, state=FileState.WAITING, kind=frame.kind, profile=frame.profile,
                      arcfile=frame.arcfile, night=night_of(path, frame.mjd_obs) or "unknown",
                      set_id=set_id_for(frame.raw_names) if frame.raw_names else None), frame


class Unreadable(Exception):
    """The file may not be read now (EACCES, EPERM): retried; ``record`` is what is recorded if it never can be."""

    def __init__(self, record: FileRecord, path: Path) -> None:
        super().__init__(record.reason)
        self.record = record
        try:
            own = path.stat()
        except OSError:
            self.stat: tuple[int, float] | None = None
        else:
            self.stat = (own.st_size, own.st_mtime)


class Changing(Exception):
    """The file changed after it settled or while it was read (re-delivered in place): not a fact about its bytes;
    it goes back to settling."""


def _unchanged_since(path: Path, before: os.stat_result) -> None:
    try:
        after = path.stat()
    except FileNotFoundError:
        raise Changing("it vanished while it was read") from None
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise Changing("it changed while it was read")


def _read_small(path: Path, size: int) -> bytes | None:
    """The bytes of a small file (hashed and classified from one read), None for a large one (streamed)."""
    if size > QUICK_MAX_BYTES:
        return None
    with open(path, "rb") as fh:
        return fh.read()


def take(paths: Iterable[tuple[Path, Path]], settings: Settings, engine: Engine, frames: FrameCache,
         settled: dict[Path, tuple[int, float]] | None = None,
         given_up: dict[Path, float] | None = None) -> IntakeResult:
    """Examine ``(path, root)`` pairs (``settled``: their size and mtime when they settled) and record them in one
    transaction; see the module's docstring. ``given_up``: paths unreadable for this long [s] that are recorded as
    rejected if they still cannot be read."""
    result = IntakeResult()
    found: list[tuple[Path, FileRecord, FrameInfo | None]] = []
    locked: dict[Path, Unreadable] = {}
    for path, root in paths:
        try:
            examined = examine(path, root, settings, (settled or {}).get(path))
        except Changing:
            result.changing.append(path)
            continue
        except Unreadable as exc:
            locked[path] = exc
            continue
        except Exception as exc:  # noqa: BLE001 - transient (examine raises nothing else): try again later
            result.retry[path] = describe(exc)
            continue
        if examined is not None:
            found.append((path, *examined))
    if locked:
        try:
            found += _unreadable(engine, locked, given_up or {}, result)
        except Exception as exc:  # noqa: BLE001 - the database: try them again later
            result.retry.update({path: describe(exc) for path in locked})
    if not found:
        return result
    try:
        _record(engine, found, frames, result)
    except Exception as exc:  # noqa: BLE001 - try one by one, so that one bad path cannot hold the batch back
        if len(found) == 1 or is_transient(exc):
            result.retry.update({path: describe(exc) for path, _, _ in found})
            return result
        for one in found:
            try:
                _record(engine, [one], frames, result)
            except Exception as single:  # noqa: BLE001 - recorded as a retry with its reason, logged by the caller
                result.retry[one[0]] = describe(single)
    return result


def _unreadable(engine: Engine, locked: dict[Path, Unreadable], given_up: dict[Path, float],
                result: IntakeResult) -> list[tuple[Path, FileRecord, None]]:
    """Files that may not be read now. A version the ledger has at the same size and mtime stays (the moment is
    noted on it, never a new version); any other is tried again, and is recorded as rejected only once it has
    been unreadable for its ``given_up`` time. Returns those to record."""
    rejected = []
    with engine.begin() as conn:
        for path, exc in locked.items():
            known = ledger.latest_version(conn, exc.record.path)
            if known is not None and known.state != FileState.VANISHED and (known.size, known.mtime) == exc.stat:
                file_lifecycle.note_unreadable(conn, known.path, known.sha256, utcnow())
                log.info("file %s: %s; its known version stays", path.name, exc.record.reason)
            elif path in given_up:
                reason = f"{exc.record.reason} for {given_up[path]:.0f} s"
                rejected.append((path, replace(exc.record, reason=reason), None))
            else:
                result.retry[path] = str(exc.record.reason)
                result.unreadable.add(path)
    return rejected


def _record(engine: Engine, found: list[tuple[Path, FileRecord, FrameInfo | None]], frames: FrameCache,
            result: IntakeResult) -> None:
    nights = set()
    with engine.begin() as conn:
        outcomes = file_lifecycle.record(conn, [record for _, record, _ in found])
        for (_, record, frame), (_, changed) in zip(found, outcomes, strict=True):
            if frame is not None:
                frames.put(record.path, record.sha256, frame)
                if changed and record.night:
                    nights.add(record.night)
        checkpoint("intake-before-commit")
    checkpoint("intake-after-commit")
    result.nights |= nights
    for path, record, _ in found:
        log.info("file %s: %s%s", path.name, record.state, f" ({record.reason})" if record.reason else "")
