"""``flatqc up``: Redis (its own unless FLATQC_REDIS_URL is set), the watcher and N rq worker processes.

Workers are separate processes (``python -m flatqc worker``) exactly as in a real deployment; the watcher runs in a
thread of this process. ``stop()`` (Ctrl-C / SIGTERM) stops the watcher, asks workers to finish their current job
(rq's warm shutdown), then stops Redis.
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
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from flatqc.compose import service_queue
from flatqc.queue import redis_connection, redis_url_file
from flatqc.readiness import wait_for_database, wait_for_redis
from flatqc.redis_server import EmbeddedRedis
from flatqc.settings import Settings, settings_env
from watcher.run import run_watcher

if TYPE_CHECKING:
    from flatqc.web import WebServer

log = logging.getLogger(__name__)


def ensure_sqlite_folder(db_url: str) -> None:
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


class Service:
    """Everything on one machine; usable from tests as the ``flatqc up`` equivalent."""

    def __init__(self, settings: Settings, workers: int | None = None, web: bool = False) -> None:
        self.settings = settings
        self.n_workers = settings.workers if workers is None else workers
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis_url
        self.workers: list[subprocess.Popen[bytes]] = []
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

    def start(self) -> None:
        ensure_sqlite_folder(self.settings.db_url)
        self.settings.qc_output.mkdir(parents=True, exist_ok=True)  # the dashboard (and /healthz) looks there
        self.engine = engine = wait_for_database(self.settings.db_url)
        if self.redis_url:  # an external Redis: wait until it answers
            wait_for_redis(self.redis_url).close()
        else:
            self.redis = EmbeddedRedis(self.settings.run_dir / "redis")
            self.redis.start()
            self.redis_url = self.redis.url
            url_file = redis_url_file(self.settings)
            url_file.touch(mode=0o600)
            url_file.write_text(self.redis_url)
            log.info("started redis-server on 127.0.0.1:%s", self.redis.port)
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
        env = os.environ | settings_env(self.settings.model_copy(update={"redis_url": self.redis_url}))
        name = f"flatqc-{socket.gethostname()}-{os.getpid()}-{index}-{secrets.token_hex(3)}"
        # its own process group: a Ctrl-C on the terminal reaches `flatqc up` alone, which asks each worker once
        # to finish its job (a second signal would make rq kill the job) and stops Redis after them
        process = subprocess.Popen([sys.executable, "-m", "flatqc", "worker", "--name", name], env=env,
                                   process_group=0)
        if index < len(self.workers):
            self.workers[index] = process
        else:
            self.workers.append(process)
        return process

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
        if self.redis:
            self.redis.stop()
            redis_url_file(self.settings).unlink(missing_ok=True)
        if self.engine is not None:
            self.engine.dispose()

    def wait(self) -> None:
        """Block until SIGINT, SIGTERM or SIGHUP (the terminal closed), then stop everything."""
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, lambda *_: stopping.set())
        while not stopping.wait(1.0):
            self.restart_dead_workers()
        self.stop()

    def restart_dead_workers(self) -> list[int]:
        """Start again every worker process that has exited (e.g. rq quits on a Redis outage mid-job, or the
        worker was killed); returns their indexes."""
        restarted = []
        for index, process in enumerate(self.workers):
            if process.poll() is not None:
                log.warning("worker %d exited with %s; starting it again", index, process.returncode)
                self.start_worker(index)
                restarted.append(index)
        return restarted
