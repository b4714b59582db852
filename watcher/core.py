"""The watcher's work, without threads: notice files, wait until complete, record versions, group, enqueue.

Every step reads or writes the ledger; events from watchdog only make it look sooner. ``tick()`` does one round
(settle noticed files, regroup changed nights); ``rescan()`` walks the whole tree and ``reconcile()`` repairs the
queue from the ledger (jobs lost with a Redis restart, jobs of dead workers, sets that timed out).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from sqlalchemy.engine import Engine, Row

from flatqc import ledger
from flatqc.db import utcnow
from flatqc.files import inside, is_candidate_name, sha256_file, walk_files
from flatqc.process import set_version
from flatqc.queue import enqueue_set, fetch_job, job_id_for, job_is_stale
from flatqc.settings import Settings
from qc.errors import FlatQCError, NotAFlatProduct
from qc.fitsio import FrameInfo, check_structure, inspect_file
from qc.sets import FlatSet, group_sets, night_of, set_id_for

log = logging.getLogger(__name__)

FRAME_CACHE_SIZE = 20_000
"""Classified headers kept in memory (a few hundred bytes each); beyond that the cache starts again."""


@dataclass
class Noticed:
    """A file seen on disk but not yet taken: its last size and mtime and since when they are unchanged."""

    size: int
    mtime: float
    stable_since: float


def members_of(flatset: FlatSet, hashes: dict[Path, str]) -> dict[str, object]:
    """The set version's members as plain data (paths and hashes), stored in ``sets.members`` and sent to jobs."""
    paths = [flatset.master.path, flatset.bpm.path, *(r.path for r in flatset.raws)]
    return {"paths": [str(p) for p in paths], "sha256": [hashes[p] for p in paths]}


class Watcher:
    """Ledger-driven watcher of ``$DFS_PRODUCT/<RAW_TYPE>/<DATE>/`` and ``$DFS_RAW/<DATE>/``."""

    def __init__(self, settings: Settings, engine: Engine, queue_factory: Callable[[], Queue],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.engine = engine
        self.queue_factory = queue_factory
        self.clock = clock
        self.noticed: dict[Path, Noticed] = {}
        self.frames: dict[tuple[str, str], FrameInfo] = {}
        self.dirty_nights: set[str] = set()

    # -- where to look -------------------------------------------------------------------------------------------
    def roots(self) -> list[Path]:
        product = [self.settings.dfs_product / raw_type for raw_type in self.settings.watched_raw_types]
        return [*product, self.settings.dfs_raw]

    def root_of(self, path: Path) -> Path | None:
        for root in self.roots():
            if path.is_relative_to(root):
                return root
        return None

    # -- noticing and settling -----------------------------------------------------------------------------------
    def notice(self, path: Path) -> None:
        """A file may have appeared or changed (event or rescan). Hidden and temporary names are never taken."""
        path = Path(path)
        if not is_candidate_name(path.name) or self.root_of(path) is None:
            return
        try:
            stat = path.stat()
        except OSError:
            self.noticed.pop(path, None)
            return
        known = self.noticed.get(path)
        if known is None or (known.size, known.mtime) != (stat.st_size, stat.st_mtime):
            self.noticed[path] = Noticed(stat.st_size, stat.st_mtime, self.clock())

    def rescan(self) -> int:
        """Walk the whole tree and notice every file the ledger has not seen with this size and mtime."""
        count = 0
        with self.engine.connect() as conn:
            for root in self.roots():
                if not root.is_dir():
                    continue
                for path in walk_files(root):
                    if not is_candidate_name(path.name) or path in self.noticed:
                        continue
                    latest = ledger.latest_version(conn, str(path))
                    try:
                        stat = self._stat(path)
                    except OSError:
                        continue
                    if latest is None or (latest.size, latest.mtime) != (stat.st_size, stat.st_mtime):
                        self.notice(path)
                        count += 1
        return count

    def settle(self) -> None:
        """Take every noticed file whose size and mtime stayed the same for ``file_settle_s`` and that is whole."""
        now = self.clock()
        for path, noticed in list(self.noticed.items()):
            self.notice(path)
            if self.noticed.get(path) is not noticed:
                continue  # gone, or changed since: its clock restarted
            stable_for = now - noticed.stable_since
            if stable_for < self.settings.file_settle_s:
                continue
            if not path.is_symlink():
                try:
                    check_structure(path)
                except FlatQCError:
                    if stable_for < self.settings.truncated_after_s:
                        continue  # maybe still being written; give it time before calling it truncated
            del self.noticed[path]
            self.take(path)

    def _stat(self, path: Path) -> os.stat_result:
        """The file's own stat; for a symlink leading out of the tree, the link's (its target is never read)."""
        root = self.root_of(path)
        if path.is_symlink() and (root is None or not inside(path, root)):
            return path.lstat()
        return path.stat()

    # -- taking one file -----------------------------------------------------------------------------------------
    def take(self, path: Path) -> None:
        """Record a complete file version and classify it; any error is recorded on the file, never raised."""
        try:
            self._take(path)
        except Exception as exc:  # noqa: BLE001 - one bad file must never stop the watcher
            log.exception("error handling %s", path)
            stat = self._stat(path)
            with self.engine.begin() as conn:
                file_id, _ = ledger.record_version(conn, str(path), stat.st_size, stat.st_mtime, "unreadable")
                ledger.set_file_state(conn, [file_id], "rejected", f"could not be read: {exc}")

    def _take(self, path: Path) -> None:
        root = self.root_of(path)
        if path.is_symlink() and (root is None or not inside(path, root)):
            stat = self._stat(path)
            with self.engine.begin() as conn:
                file_id, new = ledger.record_version(conn, str(path), stat.st_size, stat.st_mtime, "symlink")
                if new:
                    ledger.set_file_state(conn, [file_id], "ignored", "symlink leads outside the watched tree")
            return
        stat = path.stat()
        sha = sha256_file(path)
        with self.engine.begin() as conn:
            file_id, new = ledger.record_version(conn, str(path), stat.st_size, stat.st_mtime, sha)
        if not new:
            return
        state, reason, extra = "waiting", None, {}
        try:
            frame = inspect_file(path, self.settings.crires.default_window_starty)
        except NotAFlatProduct as exc:
            state, reason = "ignored", str(exc)
        except FlatQCError as exc:
            state, reason = "rejected", str(exc)
        else:
            if self.settings.instrument not in ("auto", frame.profile):
                state, reason = "ignored", f"instrument {frame.profile} not handled (FLATQC_INSTRUMENT)"
            else:
                night = night_of(path, frame.mjd_obs) or "unknown"
                self.frames[(str(path), sha)] = frame
                self.dirty_nights.add(night)
                extra = {"kind": frame.kind, "profile": frame.profile, "arcfile": frame.arcfile, "night": night,
                         "set_id": set_id_for(frame.raw_names) if frame.raw_names else None}
        if state != "waiting":
            extra["night"] = night_of(path, None)
        with self.engine.begin() as conn:
            ledger.set_file_state(conn, [file_id], state, reason, **extra)
        log.info("file %s: %s%s", path.name, state, f" ({reason})" if reason else "")

    # -- grouping and queueing -----------------------------------------------------------------------------------
    def regroup(self, night: str) -> None:
        """Group the night's current files; claim and enqueue complete sets, note what partial sets miss."""
        with self.engine.connect() as conn:
            rows = ledger.current_files(conn, night)
        frames, ids, hashes, mtimes = [], {}, {}, {}
        for row in rows:
            frame = self._frame(row.path, row.sha256)
            if frame is None:
                continue
            frames.append(frame)
            ids[frame.path], hashes[frame.path], mtimes[frame.path] = row.id, row.sha256, row.mtime
        grouping = group_sets(frames, mtimes)
        to_queue: list[tuple[str, str]] = []
        with self.engine.begin() as conn:
            for flatset in grouping.complete:
                members = members_of(flatset, hashes)
                version = set_version(members["sha256"])
                member_ids = [ids[Path(p)] for p in members["paths"]]
                job_id, why = job_id_for(version), "set complete"
                if not ledger.claim_set(conn, version, "queued", set_id=flatset.set_id, night=flatset.night,
                                        profile=flatset.profile, setting_key=flatset.setting_key,
                                        n_raw=flatset.n_raw, members=members, job_id=job_id,
                                        first_arrival=ledger.first_seen(conn, member_ids), queued_at=utcnow()):
                    known = ledger.set_row(conn, version)
                    if known is None or known.state != "superseded":
                        continue  # claimed before: queued, running or finished already
                    # the files hold these bytes again after a newer version (A, B, A): this version counts again
                    job_id, why = job_id_for(version, known.attempts + 1), "files hold this version's bytes again"
                    ledger.update_set(conn, version, state="queued", reason=None, job_id=job_id, queued_at=utcnow())
                ledger.set_file_state(conn, member_ids, "queued", None, set_id=flatset.set_id)
                ledger.supersede_other_versions(conn, flatset.set_id, version)
                ledger.log_job_event(conn, version, job_id, "queued", why)
                to_queue.append((version, job_id))
            for partial in grouping.partial:
                missing = "missing " + ", ".join(partial.missing)
                pending = ledger.pending_version(partial.set_id)
                if not ledger.claim_set(conn, pending, "waiting", set_id=partial.set_id, night=partial.night,
                                        reason=missing, first_arrival=utcnow()):
                    row = ledger.set_row(conn, pending)
                    if row is not None and row.state in ("waiting", "incomplete", "superseded"):
                        ledger.update_set(conn, pending, reason=missing,
                                          state="incomplete" if row.state == "incomplete" else "waiting")
                ledger.set_file_state(conn, [ids[f.path] for f in partial.present], "waiting",
                                      f"set {partial.set_id}: {missing}", set_id=partial.set_id)
            for set_id, reason, members in grouping.rejected:
                member_hashes = [hashes[m.path] for m in members]
                ledger.claim_set(conn, set_version(member_hashes), "rejected", set_id=set_id, night=night,
                                 reason=reason, members={"paths": [str(m.path) for m in members],
                                                         "sha256": member_hashes})
                ledger.update_set(conn, ledger.pending_version(set_id), state="superseded")
                ledger.set_file_state(conn, [ids[m.path] for m in members], "rejected", f"set {set_id}: {reason}",
                                      set_id=set_id)
            for frame, reason in grouping.superseded:
                ledger.set_file_state(conn, [ids[frame.path]], "ignored", reason)
            for frame in grouping.unused_raws:
                ledger.set_file_state(conn, [ids[frame.path]], "waiting",
                                      "raw flat not listed by any master or BPM (yet)")
        for version, job_id in to_queue:
            self.enqueue(version, job_id)

    def _frame(self, path: str, sha: str) -> FrameInfo | None:
        key = (path, sha)
        if key not in self.frames:
            if len(self.frames) > FRAME_CACHE_SIZE:
                self.frames.clear()
            try:
                self.frames[key] = inspect_file(Path(path), self.settings.crires.default_window_starty)
            except (OSError, FlatQCError):
                return None
        return self.frames[key]

    def enqueue(self, version: str, job_id: str | None = None) -> bool:
        """Put the job of a claimed set version on the queue; on Redis errors, ``reconcile`` will retry."""
        job_id = job_id or job_id_for(version)
        try:
            enqueue_set(self.queue_factory(), version, self.settings, job_id)
        except RedisError as exc:
            log.warning("could not queue %s (%s); will retry", version[:16], exc)
            return False
        return True

    # -- repair --------------------------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Make the queue agree with the ledger and time out incomplete sets."""
        with self.engine.begin() as conn:
            for row in ledger.sets_in_states(conn, ["waiting"]):
                if ledger.older_than(row.created_at, self.settings.incomplete_timeout_s):
                    ledger.update_set(conn, row.version, state="incomplete")
            active = ledger.sets_in_states(conn, ["queued", "running"])
        try:
            connection = self.queue_factory().connection
            for row in active:
                job = fetch_job(connection, row.job_id)
                if job is None:
                    self._requeue(row, "job missing from Redis (restart?)")
                elif job_is_stale(job, self.settings.stale_job_s):
                    job.delete()
                    self._requeue(row, "worker stopped sending heartbeats (killed?)")
                elif job.is_failed:
                    self._mark_failed(row, job)
        except RedisError as exc:
            log.warning("reconcile: Redis unavailable (%s)", exc)

    def _requeue(self, row: Row, why: str) -> None:
        if self.enqueue(row.version, row.job_id):
            with self.engine.begin() as conn:
                ledger.update_set(conn, row.version, state="queued", queued_at=utcnow())
                ledger.log_job_event(conn, row.version, row.job_id, "requeued", why)
            log.info("requeued set %s: %s", row.set_id, why)

    def _mark_failed(self, row: Row, job: Job) -> None:
        result = job.latest_result()
        error = (result.exc_string or "").strip().splitlines()[-1:] if result else []
        with self.engine.begin() as conn:
            ledger.update_set(conn, row.version, state="failed", reason=error[0] if error else "job failed",
                              finished_at=utcnow())

    # -- the loop ------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        """One round: take settled files, regroup nights that changed."""
        self.settle()
        while self.dirty_nights:
            night = self.dirty_nights.pop()
            try:
                self.regroup(night)
            except Exception:  # noqa: BLE001 - keep watching; the next rescan retries this night
                log.exception("error grouping night %s", night)
