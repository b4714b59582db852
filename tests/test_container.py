"""The image as an operator runs it: built with podman, its roles started as docker-compose.yml starts them (the
environment, commands and worker replicas are read from that file), against this machine's PostgreSQL and a Redis
of the test's own with passwords that break hand-written URLs.

The data tree first belongs to root (what an engine makes of a missing ``$DATA``): the roles wait with one line
naming the fix instead of crashing, ``/healthz`` says the QC output cannot be written. After the fix (``chown``) a
synthetic night is delivered and must come out as ``flatqc process`` computes it, pictures included. Then every
role stops within seconds, and no log shows a password.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy import create_engine, select

from flatqc.db import sets
from flatqc.redis_server import EmbeddedRedis, free_port
from flatqc.urls import masked, with_password
from qc.synth import load_manifest
from tests.conftest import ProcessedNight, unavailable
from tests.service_helpers import FINAL, assert_same_qc1, deliver, qc1_rows, set_states, wait_for

pytestmark = [pytest.mark.container, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/flatqc:test"
IMAGE_UID = 1000
DB_PASSWORD = "pg@:/#%pw"
REDIS_PASSWORD = "rd@:/#%pw"
FAST = {"FLATQC_FILE_SETTLE_S": "0.5", "FLATQC_RESCAN_INTERVAL_S": "2", "FLATQC_INCOMPLETE_TIMEOUT_S": "8",
        "FLATQC_TRUNCATED_AFTER_S": "3", "FLATQC_JOB_RETRY_INTERVALS": "1 2"}
"""Short timings (as the service tests use), on top of what compose sets."""


def podman(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode:
        raise AssertionError(f"podman {' '.join(args[:2])} failed: {result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    """The image of deploy/Dockerfile, built here (cached layers: only what changed is rebuilt)."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (.ci/run installs it with ../shared/tools/container-base.sh)")
    if os.geteuid() != 0:
        unavailable("the container test runs podman as root (the data tree changes owner)")
    podman("build", "--network", "host", "-f", "deploy/Dockerfile", "-t", IMAGE, str(ROOT), timeout=900)
    return IMAGE


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``."""
    def one(match: re.Match[str]) -> str:
        name, kind, rest = match["name"], match["kind"], match["rest"] or ""
        if variables.get(name):
            return variables[name]
        if kind == ":?":
            raise AssertionError(f"compose needs {name}: {rest}")
        return rest if kind == ":-" else ""
    return re.sub(r"\$\{(?P<name>\w+)(?:(?P<kind>:[-?])(?P<rest>[^}]*))?\}", one, value)


def compose_roles(variables: dict[str, str]) -> dict[str, dict]:
    """The flatqc services of docker-compose.yml (those built from the Dockerfile): environment (interpolated),
    command, replicas, and where the data tree is mounted."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    roles = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        (volume,) = service["volumes"]
        assert volume["bind"]["create_host_path"] is False  # a missing $DATA is an error, not a tree owned by root
        roles[name] = {"environment": {k: interpolate(str(v), variables) for k, v in service["environment"].items()},
                       "command": service["command"], "replicas": service.get("deploy", {}).get("replicas", 1),
                       "target": volume["target"], "restart": service["restart"]}
    return roles


class Containers:
    """The containers of one test, by name; removed at the end."""

    def __init__(self) -> None:
        self.prefix = f"flatqc-test-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def run(self, role: str, image: str, spec: dict, env: dict[str, str], tree: Path, command: list[str]) -> str:
        """Start one container of ``spec`` (a role of :func:`compose_roles`) with ``env`` and ``command``."""
        name = f"{self.prefix}-{role}"
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        podman("run", "-d", "--name", name, "--network", "host", "--restart", spec["restart"], *env_args,
               "-v", f"{tree}:{spec['target']}", image, *command)
        self.names.append(name)
        return name

    def logs(self, name: str) -> str:
        result = podman("logs", name)
        return result.stdout + result.stderr

    def state(self, name: str) -> dict:
        """podman's State of the container, with its RestartCount."""
        inspected = json.loads(podman("inspect", name).stdout)[0]
        return inspected["State"] | {"RestartCount": inspected["RestartCount"]}

    def remove(self) -> None:
        if self.names:
            podman("rm", "-f", "-t", "0", *self.names, check=False)


@pytest.fixture()
def containers() -> Iterator[Containers]:
    made = Containers()
    yield made
    made.remove()


def health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
    except OSError:
        return 0, {}


def test_the_image_runs_a_night_as_compose_starts_it(image: str, containers: Containers, pg_url: str,
                                                     synth_night: Path, processed_night: ProcessedNight,
                                                     tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis", password=REDIS_PASSWORD)
    if not redis.binary:
        unavailable("no redis-server")
    redis.start()
    tree = tmp_path / "tree"  # made by root, as an engine makes a missing $DATA; qc/ too, as `sudo mkdir` would
    (tree / "qc").mkdir(parents=True)
    shutil.copytree(synth_night / "reference", tree / "reference")
    roles = compose_roles({"POSTGRES_PASSWORD": DB_PASSWORD, "REDIS_PASSWORD": REDIS_PASSWORD, "DATA": str(tree)})
    port = free_port()
    names: dict[str, list[str]] = {}
    try:
        for role, spec in roles.items():
            env = spec["environment"] | FAST | {  # this machine's services instead of the compose ones
                "FLATQC_DB_URL": pg_url, "FLATQC_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0"}
            command = [*spec["command"], "--host", "127.0.0.1", "--port", str(port)] if role == "web" else \
                spec["command"]
            names[role] = [containers.run(f"{role}{i}", image, spec, env, tree, command)
                           for i in range(spec["replicas"])]
        assert len(names["worker"]) == 2
        (watcher,), (web,) = names["watcher"], names["web"]

        # A tree the image's user cannot write: each role says so once and waits; the dashboard reports it.
        wait_for(lambda: health(port)[0] == 503, 60, "/healthz to answer 503")
        assert "cannot write /data/qc: /data/qc is owned by uid 0" in health(port)[1]["qc_output"]
        cannot_create = (f"cannot create /data/dfs_product/DARK: /data is owned by uid 0 (drwxr-xr-x), we run as uid "
                         f"{IMAGE_UID}: fix with chown -R {IMAGE_UID} /data (and 3 more folders); waiting")
        wait_for(lambda: cannot_create in containers.logs(watcher), 30, "the watcher to name the problem")
        for worker in names["worker"]:
            wait_for(lambda w=worker: "cannot write /data/qc" in containers.logs(w), 60, "the workers to wait")
        time.sleep(6)  # past the next try of each
        for name in containers.names:
            state = containers.state(name)
            assert state["Running"] and state["RestartCount"] == 0, (name, state)
        assert containers.logs(watcher).count("cannot create") == 1

        # The fix the message names (/data is the tree): the service goes on by itself.
        for folder, _, files in os.walk(tree):
            for path in (folder, *(os.path.join(folder, f) for f in files)):
                os.chown(path, IMAGE_UID, IMAGE_UID)
        def healthy() -> bool:
            code, answer = health(port)
            return code == 200 and answer["healthy"] is True and all(
                answer[check] == "ok" for check in ("database", "qc_output", "redis", "watcher"))

        wait_for(healthy, 30, "/healthz to answer 200")
        wait_for(lambda: "in place now; going on" in containers.logs(watcher), 30, "the watcher to go on")

        manifest = load_manifest(synth_night / "manifest.json")
        deliver(synth_night, tree)
        wait_for(lambda: all(set_states(pg_url).get(s.set_id) in FINAL for s in manifest.sets), 240,
                 "every set to reach a final state")
        wait_for(lambda: not pictures_pending(pg_url), 120, "the pictures of every done set")
        assert_same_qc1(qc1_rows(pg_url), qc1_rows(processed_night.db_url))
        for set_id in [s for s, state in set_states(pg_url).items() if state == "done"]:
            pictures = list((tree / "qc" / "2010-05-12" / set_id).glob("*.png"))
            assert len(pictures) >= 6 and all(p.stat().st_uid == IMAGE_UID for p in pictures), set_id

        status = podman("exec", web, "flatqc", "status")
        assert re.search(r"queue: 0 waiting \(.*\), 0 running, 0 scheduled retries", status.stdout), status.stdout

        # Every role stops on SIGTERM within seconds, cleanly.
        for name in containers.names:
            started = time.monotonic()
            podman("stop", "-t", "10", name)
            took = time.monotonic() - started
            state = containers.state(name)
            assert took < 5 and state["ExitCode"] == 0, (name, took, state["ExitCode"], containers.logs(name)[-3000:])
        logs = "\n".join(containers.logs(name) for name in containers.names) + status.stdout + status.stderr
        assert f"(database {masked(with_password(pg_url, DB_PASSWORD))})" in containers.logs(web)
        for password in (DB_PASSWORD, REDIS_PASSWORD):
            assert password not in logs and quote(password, safe="") not in logs
    finally:
        redis.stop()


def pictures_pending(db_url: str) -> list[str]:
    """Done sets whose pictures are not drawn yet."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        pending = [r.set_id for r in conn.execute(select(sets).where(sets.c.state == "done",
                                                                     sets.c.pictures != "done"))]
    engine.dispose()
    return pending
