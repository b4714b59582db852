"""The watcher: small parts (settle, intake, regroup, repair) run in rounds, each isolated from the others' faults.

Every step reads or writes the ledger; events from watchdog only make it look sooner. ``tick()`` records the files
that vanished, takes settled files and regroups the nights they changed; ``rescan()`` walks the whole tree against
the ledger (files gone from it are vanished) and finds the nights with unfinished work; ``repair()`` makes the queue
agree with the ledger. A phase that fails is logged once per
distinct error (rate-limited) and the other phases still run; what it did not finish is retried next round.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from flatqc import ledger
from flatqc.db import utcnow
from flatqc.faults import checkpoint, describe
from flatqc.files import disk_stat, is_candidate_name, path_from_text, path_text, walk_files
from flatqc.heartbeat import beat_watcher
from flatqc.lifecycle import files as file_lifecycle
from flatqc.lifecycle.files import FileState
from flatqc.logs import RateLimitedLog
from flatqc.queue import JobQueue, Lane
from flatqc.settings import Settings
from watcher.intake import FrameCache, take
from watcher.regroup import regroup
from watcher.repair import repair_queue, time_out_incomplete
from watcher.settle import Settler

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH = 500
"""Files recorded per ledger transaction."""
RETRY_MAX_S = 30.0
"""Longest wait before a file that hit a transient fault is tried again [s]."""
ERROR_LOG_S = 300.0
"""The same error of the same phase is logged at most this often [s]."""
BEAT_EVERY_S = 5.0
"""Between full rounds, the heartbeat (:mod:`flatqc.heartbeat`) is written at most this often [s]."""


class Watcher:
    """Ledger-driven watcher of ``$DFS_PRODUCT/<RAW_TYPE>/<DATE>/`` and ``$DFS_RAW/<DATE>/``; the sets it claims
    are queued through ``queue`` on the QC queue of ``lane`` (``flatqc backfill``: the backfill queue)."""

    def __init__(self, settings: Settings, engine: Engine, queue: JobQueue,
                 clock: Callable[[], float] = time.monotonic, lane: Lane = Lane.REALTIME) -> None:
        self.settings = settings
        self.engine = engine
        self.queue = queue
        self.lane = lane
        self.settler = Settler(settings.file_settle_s, settings.truncated_after_s, clock)
        self.frames = FrameCache(settings.window_starty_defaults())
        self.dirty_nights: set[str] = set()
        self.gone: set[Path] = set()
        self.unreadable_since: dict[Path, float] = {}
        """When each noticed path that may not be read (EACCES, EPERM) first failed (watcher clock)."""
        """Paths an event or the rescan found deleted or moved away, to be recorded as vanished."""
        self.errors = RateLimitedLog(log, ERROR_LOG_S)
        self.clock = clock
        self.last_beat: float | None = None

    # -- where to look -------------------------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        product = [self.settings.dfs_product / raw_type for raw_type in self.settings.watched_raw_types]
        return [*product, self.settings.dfs_raw]

    def root_of(self, path: Path) -> Path | None:
        return next((root for root in self.roots() if path.is_relative_to(root)), None)

    def notice(self, path: Path, finished: bool = False) -> None:
        """A file may have appeared or changed (event or rescan); ``finished``: its writer closed it or it was
        renamed into place. Hidden and temporary names are never taken."""
        if is_candidate_name(path.name) and self.root_of(path) is not None:
            self.settler.notice(path, finished)

    def vanished(self, path: Path) -> None:
        """``path`` was deleted or moved away (an event): recorded as vanished at the next round if still gone."""
        if self.root_of(path) is not None:
            self.settler.noticed.pop(path, None)
            self.gone.add(path)

    # -- phases --------------------------------------------------------------------------------------------------
    def rescan(self) -> int:
        """Notice every file whose size or mtime the ledger does not have (or that it has as vanished); mark nights
        with unfinished work dirty; paths of the ledger no longer on disk are recorded as vanished. Returns how
        many files were noticed."""
        with self.engine.connect() as conn:
            known = ledger.known_files(conn)
            self.dirty_nights |= set(ledger.nights_with_open_work(conn))
        count, walked = 0, set()
        for root in self.roots():
            for path in walk_files(root) if root.is_dir() else ():
                walked.add(path_text(path))
                if not is_candidate_name(path.name) or path in self.settler.noticed:
                    continue
                try:
                    stat = disk_stat(path)
                except OSError:
                    continue  # gone meanwhile
                entry = known.get(path_text(path))
                if entry is None or entry[:2] != (stat.st_size, stat.st_mtime) or entry[2] == FileState.VANISHED:
                    self.settler.notice(path)
                    count += 1
        self.gone |= {path_from_text(text) for text, entry in known.items()
                      if text not in walked and entry[2] != FileState.VANISHED
                      and self.root_of(path_from_text(text)) is not None}
        self.record_gone()
        checkpoint("rescan-done")
        return count

    def record_gone(self) -> None:
        """Record the paths found gone that are still gone as vanished (one transaction); their nights are
        regrouped."""
        gone = sorted(p for p in self.gone if not _on_disk(p))
        if gone:
            with self.engine.begin() as conn:
                at = utcnow()
                nights = {path: file_lifecycle.vanish(conn, path_text(path), at) for path in gone}
            for path, night in nights.items():
                log.info("file %s: vanished (deleted or moved away)", path.name)
                if night:
                    self.dirty_nights.add(night)
        self.gone.clear()

    def intake(self, paths: Iterable[Path] | None = None) -> int:
        """Take the settled files (or ``paths`` at once), in batches; returns how many were taken."""
        settled = self.settler.ready() if paths is None else {}
        ready = list(settled) if paths is None else list(paths)
        now = self.clock()
        given_up = {path: now - since for path, since in self.unreadable_since.items()
                    if now - since >= self.settings.unreadable_give_up_s}
        for start in range(0, len(ready), BATCH):
            batch = [(p, self.root_of(p) or p.parent) for p in ready[start:start + BATCH]]
            result = take(batch, self.settings, self.engine, self.frames, settled, given_up)
            self.dirty_nights |= result.nights
            for path in result.changing:
                self.settler.notice(path)  # its clock starts again
            for path, _ in batch:
                if path in result.retry:
                    if path in result.unreadable:
                        self.unreadable_since.setdefault(path, now)
                    delay = self.settler.later(path, RETRY_MAX_S)
                    self.errors.log(f"intake {path}", logging.WARNING, "file %s not recorded (%s); trying again in "
                                    "%.0f s", path, result.retry[path], delay)
                else:
                    self.settler.taken(path)
                    self.unreadable_since.pop(path, None)
        return len(ready)

    def regroup_nights(self) -> None:
        """Regroup every dirty night; claimed sets are queued. A night that fails stays dirty."""
        for night in sorted(self.dirty_nights):
            try:
                claimed = regroup(self.engine, night, self.frames, self.lane)
            except Exception as exc:  # noqa: BLE001 - the other nights go on; this one is retried next round
                self._trouble(f"regroup {night}", exc)
                continue
            self.dirty_nights.discard(night)
            for version, job_id in claimed:
                self.enqueue(version, job_id)

    def enqueue(self, version: str, job_id: str) -> bool:
        """Put the job of a claimed set version on the queue of the watcher's lane; on Redis errors the repair pass
        queues it later."""
        try:
            self.queue.enqueue_set(version, job_id, self.lane)
        except RedisError as exc:
            self.errors.log("enqueue", logging.WARNING, "could not queue %s (%s); the repair pass will",
                            version[:16], describe(exc))
            return False
        return True

    def repair(self) -> None:
        """Time out incomplete sets, then make the queue agree with the ledger (each on its own)."""
        self._phase("incomplete timeouts", lambda: time_out_incomplete(self.engine, self.settings))
        actions = self._phase("queue repair", lambda: repair_queue(self.engine, self.settings, self.queue))
        for line in actions or ():
            log.info("repair: %s", line)

    # -- rounds --------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One short round: record vanished files, take settled files, regroup the nights they changed."""
        if self.gone:
            self._phase("deletions", self.record_gone)
        self._phase("intake", self.intake)
        checkpoint("between-intake-and-regroup")
        self._phase("regroup", self.regroup_nights)
        if self.last_beat is None or self.clock() - self.last_beat >= BEAT_EVERY_S:
            self.beat()

    def full_round(self) -> None:
        """A rescan, a repair pass and a short round, each run even when another failed."""
        found = self._phase("rescan", self.rescan)
        if found:
            log.info("rescan: %d new or changed files", found)
        self.repair()
        self.tick()
        self.beat(rescan=True)

    def beat(self, rescan: bool = False) -> None:
        """Publish the heartbeat: a round (``rescan``: a full round) was completed now."""
        self.last_beat = self.clock()
        self._phase("heartbeat", lambda: beat_watcher(self.queue.connection, self.settings.queue_name, rescan))

    def record_paths(self, paths: Iterable[Path]) -> int:
        """Take ``paths`` now (no settling) and regroup their nights: the entry ``flatqc backfill`` uses."""
        wanted = [p for p in paths if is_candidate_name(p.name) and self.root_of(p) is not None]
        taken = self.intake(wanted)
        self.regroup_nights()
        return taken

    def _phase(self, name: str, work: Callable[[], T]) -> T | None:
        """Run one phase of a round: its fault is logged (rate-limited) and None returned, never raised."""
        try:
            result = work()
        except Exception as exc:  # noqa: BLE001 - one phase's fault never stops the others
            self._trouble(name, exc)
            return None
        if self.errors.seen(name):
            suppressed = self.errors.clear(name)
            log.warning("%s works again (%d repeated errors were not logged)", name, suppressed)
        return result

    def _trouble(self, name: str, exc: Exception) -> None:
        first = not self.errors.seen(name)
        self.errors.log(name, logging.ERROR, "%s failed: %s", name, describe(exc), exc_info=exc if first else None)


def _on_disk(path: Path) -> bool:
    """False only if ``path`` is certainly not there (a folder we may not search leaves it undecided: True)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True
