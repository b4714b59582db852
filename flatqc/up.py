"""``flatqc up``: Redis (its own unless FLATQC_REDIS_URL is set), the watcher and N rq worker processes, the first
``FLATQC_REALTIME_WORKERS`` of them on the real-time QC queue only.

Workers are separate processes (``python -P -m flatqc worker``) exactly as in a real deployment; the watcher runs in
a thread of this process. ``stop()`` (Ctrl-C / SIGTERM) stops the watcher, asks workers to finish their current job
(rq's warm shutdown), then stops Redis. One ``flatqc up`` per run folder (a lock); its children end with it, however
it ends (:mod:`flatqc.children`). A worker that dies is started again, with back-off while it keeps failing at start,
until ``FLATQC_MAX_START_FAILURES`` in a row end ``flatqc up`` with the reason (:mod:`flatqc.supervision`).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from flatqc.children import ChildRecords, tied_to_parent
from flatqc.compose import service_queue
from flatqc.logs import one_line
from flatqc.queue import redis_connection, redis_url_file
from flatqc.readiness import wait_for_database, wait_for_redis
from flatqc.redis_server import EmbeddedRedis
from flatqc.settings import Settings, settings_env
from flatqc.supervision import GaveUp, RunLock, StartFailures, record_restart
from flatqc.threshold_files import thresholds_of
from watcher.run import run_watcher

if TYPE_CHECKING:
    from flatqc.web import WebServer

log = logging.getLogger(__name__)


def ensure_sqlite_folder(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def flatqc_command(*args: str) -> list[str]:
    """``python -P -m flatqc <args>``: ``-P`` keeps the working folder off ``sys.path``, so a ``qc/``, ``worker/``
    or ``watcher/`` folder there (the ESO layout has ./qc beside dfs_product/) cannot stand in for the project's
    packages. ``PYTHONPATH`` still counts."""
    return [sys.executable, "-P", "-m", "flatqc", *args]


def forward_lines(stream: IO[bytes], tail: deque[str]) -> None:
    """Copy a child's stderr to ours line by line, keeping the last lines in ``tail``; closes ``stream`` at its end."""
    with stream:
        for raw in stream:
            line = raw.decode(errors="replace")
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                tail.append(line.strip())


@dataclass
class WorkerSlot:
    """One worker of ``flatqc up``: its current process, the last lines of its stderr, its back-off."""

    process: subprocess.Popen[bytes]
    failures: StartFailures
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    reader: threading.Thread | None = None
    ended: str = ""
    """How its previous process ended (:meth:`exit_reason`)."""

    def exit_reason(self) -> str:
        """How the (dead) process ended: exit status or signal, and its last stderr line."""
        if self.reader is not None:
            self.reader.join(2.0)  # the lines it wrote before dying
        code = self.process.returncode
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        return f"{how}: {self.tail[-1]}" if self.tail else how


class Service:
    """Everything on one machine; usable from tests as the ``flatqc up`` equivalent."""

    def __init__(self, settings: Settings, workers: int | None = None, web: bool = False) -> None:
        self.settings = settings
        self.n_workers = settings.workers if workers is None else workers
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis_url
        self.slots: list[WorkerSlot] = []
        self.lock = RunLock(settings.run_dir)
        self.children = ChildRecords(settings.run_dir)
        self.counts: Redis | None = None
        self.stopping = threading.Event()
        """Set by SIGINT, SIGTERM or SIGHUP once :meth:`catch_stop_signals` ran."""
        self.stop_event = threading.Event()
        self.watcher_caught_up = threading.Event()
        self.watcher_thread: threading.Thread | None = None
        self.engine: Engine | None = None
        self.with_web = web
        self.web: WebServer | None = None

    @property
    def redis_in_use(self) -> str:
        """URL of the Redis the service uses (its own once started, else ``FLATQC_REDIS_URL``)."""
        if self.redis_url is None:
            raise RuntimeError("no Redis yet: start() the service first")
        return self.redis_url

    @property
    def workers(self) -> list[subprocess.Popen[bytes]]:
        """The current worker processes, by index."""
        return [slot.process for slot in self.slots]

    def start(self) -> None:
        """Check the threshold files (:class:`~qc.thresholds.ThresholdFileError` naming a broken one), take the run
        folder (:class:`~flatqc.supervision.RunFolderTaken` if another ``flatqc up`` has it), end what a killed
        predecessor left running, then start Redis, workers, watcher and web."""
        thresholds_of(self.settings)
        self.lock.acquire()
        self.children.end_leftovers()
        redis_url_file(self.settings).unlink(missing_ok=True)  # a killed predecessor's, naming a Redis now gone
        ensure_sqlite_folder(self.settings.db_url)
        self.settings.qc_output.mkdir(parents=True, exist_ok=True)  # the dashboard (and /healthz) looks there
        self.engine = engine = wait_for_database(self.settings.db_url, self.stopping)
        if self.redis_url:  # an external Redis: wait until it answers
            wait_for_redis(self.redis_url, self.stopping).close()
        else:
            self.redis = EmbeddedRedis(self.settings.run_dir / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
            url_file = redis_url_file(self.settings)
            url_file.touch(mode=0o600)
            url_file.write_text(self.redis_url)
            log.info("started redis-server on 127.0.0.1:%s", self.redis.port)
        self.counts = redis_connection(self.redis_in_use)
        self.record_children()
        for index in range(self.n_workers):
            self.start_worker(index)
        self.start_watcher()
        if self.with_web:
            from flatqc.web import start_web

            try:
                queue = service_queue(self.settings, redis_connection(self.redis_in_use))
                self.web = web = start_web(self.settings, engine, queue)
                log.info("dashboard on http://%s:%s/", self.settings.web_host, web.server_port)
            except OSError as exc:  # the port is taken: QC goes on without the dashboard
                log.warning("dashboard not started on %s:%s: %s", self.settings.web_host, self.settings.web_port, exc)

    def start_worker(self, index: int) -> subprocess.Popen[bytes]:
        """Start worker ``index`` (a new one at the end, or again in its slot); its stderr goes through ours."""
        env = os.environ | settings_env(self.settings.model_copy(update={"redis_url": self.redis_url}))
        name = f"flatqc-{socket.gethostname()}-{os.getpid()}-{index}-{secrets.token_hex(3)}"
        # its own process group: a Ctrl-C on the terminal reaches `flatqc up` alone, which asks each worker once
        # to finish its job (a second signal would make rq kill the job) and stops Redis after them
        args = ("worker", "--name", name, *(["--realtime-only"] if self.realtime_only(index) else []))
        process = subprocess.Popen(tied_to_parent(flatqc_command(*args)), env=env,
                                   stderr=subprocess.PIPE, process_group=0)
        if index < len(self.slots):
            slot = self.slots[index]
            slot.process = process
        else:
            slot = WorkerSlot(process, StartFailures(self.settings.max_start_failures))
            self.slots.append(slot)
        slot.failures.started(time.monotonic())
        assert process.stderr is not None
        slot.reader = threading.Thread(target=forward_lines, args=(process.stderr, slot.tail), daemon=True,
                                       name=f"worker-{index}-stderr")
        slot.reader.start()
        self.record_children()
        return process

    def realtime_only(self, index: int) -> bool:
        """Whether worker ``index`` is one of the first ``FLATQC_REALTIME_WORKERS``, on the real-time QC queue only."""
        return index < self.settings.reserved_workers(self.n_workers)

    def record_children(self) -> None:
        """Write down the children now running, for the next ``flatqc up`` should they outlive this one."""
        running = {f"worker {i}": s.process.pid for i, s in enumerate(self.slots)}
        if self.redis is not None and self.redis.process is not None:
            running["redis-server"] = self.redis.process.pid
        self.children.write(running)

    def start_watcher(self) -> None:
        """Start the watcher thread; ``watcher_caught_up`` is set when its start-up round is done."""
        self.stop_event = threading.Event()
        self.watcher_caught_up = threading.Event()
        self.watcher_thread = threading.Thread(
            target=run_watcher, name="watcher", daemon=True,
            args=(self.settings, self.engine, service_queue(self.settings, redis_connection(self.redis_in_use)),
                  self.stop_event, self.watcher_caught_up),
        )
        self.watcher_thread.start()

    def stop_watcher(self) -> None:
        self.stop_event.set()
        if self.watcher_thread:
            self.watcher_thread.join(30)

    def stop(self, grace_s: float = 30.0) -> None:
        if self.web is not None:
            self.web.shutdown()
            self.web = None
        self.stop_watcher()
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for slot in self.slots:
            if slot.reader is not None:
                slot.reader.join(5)
        if self.counts is not None:
            self.counts.close()
        if self.redis:
            self.redis.stop()
            redis_url_file(self.settings).unlink(missing_ok=True)
        if self.engine is not None:
            self.engine.dispose()
        self.children.clear()
        self.lock.release()

    def wait(self) -> None:
        """Block until :attr:`stopping` (SIGINT, SIGTERM or SIGHUP), restarting dead workers meanwhile, then stop
        everything. Raises :class:`~flatqc.supervision.GaveUp` (after stopping) when a worker keeps failing at
        start."""
        self.catch_stop_signals()
        try:
            while not self.stopping.wait(1.0):
                self.restart_dead_workers()
        finally:
            self.stop()

    def catch_stop_signals(self) -> None:
        """From now on SIGINT, SIGTERM and SIGHUP (the terminal closed) set :attr:`stopping`: called before
        :meth:`start`, a signal during start-up ends the waits for the database and Redis
        (:class:`~flatqc.readiness.StoppedWaiting`) or, once started, stops everything in order."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stopping.set())

    def restart_dead_workers(self) -> list[int]:
        """Start again every worker process that has exited (e.g. rq quits on a Redis outage mid-job, or the worker
        was killed) and is due: at once the first time, then with back-off while it keeps dying at start; returns
        their indexes. Raises :class:`~flatqc.supervision.GaveUp` at ``max_start_failures`` in a row."""
        restarted = []
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if slot.failures.restart_at is None and slot.process.poll() is not None:
                slot.ended = slot.exit_reason()
                if not slot.failures.died(now):
                    raise GaveUp(f"worker {index} failed at start {slot.failures.in_a_row} times in a row, giving "
                                 f"up (FLATQC_MAX_START_FAILURES); the last time it {slot.ended}")
                delay = (slot.failures.restart_at or now) - now
                log.warning("worker %d %s; starting it again%s", index, slot.ended,
                            f" in {delay:.0f} s" if delay else "")
            due = slot.failures.restart_at
            if due is not None and now >= due:
                self.start_worker(index)
                self.count_restart(f"worker {index} {slot.ended}")
                restarted.append(index)
        return restarted

    def count_restart(self, why: str) -> None:
        """Count a worker restart in Redis, for status, pages and metrics (a Redis down now loses the count)."""
        if self.counts is None:
            return
        try:
            record_restart(self.counts, self.settings, "worker", why)
        except RedisError as exc:
            log.warning("restart not counted: Redis unreachable (%s)", one_line(exc))
