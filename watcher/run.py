"""The running watcher: a watchdog observer feeding :class:`watcher.core.Watcher`, plus the periodic rescan.

watchdog events (close-after-write, create, modify, move into place, new ``<DATE>`` folders, delete, move away) only
make the watcher look sooner; the rescan at start and every ``rescan_interval_s`` finds whatever the events missed.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from sqlalchemy.engine import Engine
from watchdog.events import DirCreatedEvent, DirMovedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from flatqc.files import walk_files
from flatqc.folders import wait_for_folders
from flatqc.queue import JobQueue
from flatqc.readiness import StoppedWaiting
from flatqc.settings import Settings
from watcher.core import Watcher

log = logging.getLogger(__name__)

TICK_S = 0.2
"""How often noticed files are checked for completeness [s]."""


class TreeEvents(FileSystemEventHandler):
    """Hands every path an event names to the watcher (thread-safe through a lock)."""

    def __init__(self, watcher: Watcher, lock: threading.Lock) -> None:
        self.watcher = watcher
        self.lock = lock

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [getattr(event, "dest_path", None) or event.src_path]
        if not event.is_directory and event.event_type in ("deleted", "moved"):
            with self.lock:  # deleted, or moved away from its name
                self.watcher.vanished(Path(str(event.src_path)))
        if isinstance(event, DirCreatedEvent | DirMovedEvent):
            folder = Path(str(paths[0]))
            paths = [str(p) for p in walk_files(folder)] if folder.is_dir() else []
        elif event.is_directory or event.event_type in ("deleted", "opened", "closed_no_write"):
            return
        finished = event.event_type in ("closed", "moved")  # close-after-write, or renamed into place
        with self.lock:
            for path in paths:
                self.watcher.notice(Path(str(path)), finished)


def run_watcher(settings: Settings, engine: Engine, queue: JobQueue, stop: threading.Event,
                caught_up: threading.Event | None = None) -> None:
    """Watch until ``stop`` is set, queueing through ``queue``. Missing watched folders are created so that they
    can be observed; one that cannot be is reported and waited for (:func:`flatqc.folders.wait_for_folders`).
    ``caught_up`` is set once the start-up round (rescan, repair, intake, regroup) is done."""
    watcher = Watcher(settings, engine, queue)
    try:
        wait_for_folders(watcher.roots(), write=False, stop=stop)
    except StoppedWaiting:
        return
    lock = threading.Lock()
    observer = Observer()
    for root in watcher.roots():
        observer.schedule(TreeEvents(watcher, lock), str(root), recursive=True)
    observer.start()
    log.info("watching %s", ", ".join(str(r) for r in watcher.roots()))
    next_full = 0.0
    try:
        while not stop.is_set():
            with lock:  # each phase is isolated inside the watcher: a round never raises
                if time.monotonic() >= next_full:
                    watcher.full_round()
                    next_full = time.monotonic() + settings.rescan_interval_s
                    if caught_up is not None:
                        caught_up.set()
                else:
                    watcher.tick()
            stop.wait(TICK_S)
    finally:
        observer.stop()
        observer.join(10)
