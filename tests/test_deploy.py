"""Deployment without the image: passwords of any character and never shown, folders that cannot be written named
with their fix, the web stopping on SIGTERM, picture retries counted, and the deploy files checked by their tools
(compose schema, ``systemd-analyze verify``, the pins of ``constraints.txt``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from sqlalchemy.engine import make_url

from flatqc.folders import folder_problem
from flatqc.queue import pictures_queue, redis_connection
from flatqc.redis_server import EmbeddedRedis, free_port
from flatqc.settings import Settings, settings_env
from flatqc.status import queue_status
from flatqc.urls import masked, with_password
from tests.conftest import unavailable
from tests.service_helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
ODD = "p@ss:/#%w?rd"
"""A password holding every character that breaks a URL written by hand."""


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql+psycopg://flatqc:s3cret@db/flatqc", "postgresql+psycopg://flatqc:***@db/flatqc"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f"redis://:{ODD}@h:6379/0 refused; postgresql://u:{ODD}@h/db too", "redis://:***@h:6379/0 refused; "
     "postgresql://u:***@h/db too"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("sqlite:///./var/flatqc.db", "sqlite:///./var/flatqc.db"),
])
def test_masked_hides_passwords_and_only_them(text: str, shown: str) -> None:
    assert masked(text) == shown


@pytest.mark.service
def test_passwords_given_apart_work_with_any_character(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = EmbeddedRedis(tmp_path / "redis", password=ODD)
    if not server.binary:
        unavailable("no redis-server")
    server.start()
    try:
        monkeypatch.setenv("FLATQC_REDIS_URL", f"redis://127.0.0.1:{server.port}/0")
        monkeypatch.setenv("FLATQC_REDIS_PASSWORD", ODD)
        monkeypatch.setenv("FLATQC_DB_URL", "postgresql+psycopg://flatqc@db:5432/flatqc?options=-csearch_path%3Dx")
        monkeypatch.setenv("FLATQC_DB_PASSWORD", ODD)
        settings = Settings()
        assert redis_connection(settings.redis_url or "").ping()  # the real server took the password
        database = make_url(settings.db_url)
        assert (database.password, database.host, database.query) == (ODD, "db", {"options": "-csearch_path=x"})
        assert ODD not in masked(settings.db_url) and quote(ODD, safe="") not in masked(settings.db_url)
        for name in [n for n in os.environ if n.startswith("FLATQC_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv(*next(iter(settings_env(settings).items())))
        child = Settings()  # what a worker of `flatqc up` gets
        assert (child.db_url, child.redis_url) == (settings.db_url, settings.redis_url)
    finally:
        server.stop()


@pytest.fixture()
def shared_folder() -> Iterator[Path]:
    """A folder others may enter (pytest's tmp_path is 0700), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="flatqc-folders-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def probe_as_other_user(folder: Path, write: bool) -> str | None:
    """:func:`folder_problem` as uid 65534 in a forked child when we are root (root may write anywhere), else here."""
    if os.geteuid() != 0:
        return folder_problem(folder, write)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, answer through the pipe, exit without running pytest's clean-up
        try:
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, json.dumps(folder_problem(folder, write)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        problem = json.loads(answer.read())
    os.waitpid(pid, 0)
    return problem


def test_a_folder_that_cannot_be_written_is_named_with_its_owner_and_the_fix(shared_folder: Path) -> None:
    output = shared_folder / "qc"
    output.mkdir(mode=0o555)
    output.chmod(0o555)
    owner, we = os.geteuid(), 65534 if os.geteuid() == 0 else os.geteuid()
    assert probe_as_other_user(output, write=True) == (
        f"cannot write {output}: {output} is owned by uid {owner} (dr-xr-xr-x), we run as uid {we}: "
        f"fix with chown -R {we} {output}")
    assert probe_as_other_user(output / "2010-05-12", write=False) == (
        f"cannot create {output / '2010-05-12'}: {output} is owned by uid {owner} (dr-xr-xr-x), we run as uid "
        f"{we}: fix with chown -R {we} {output}")
    output.chmod(0o777)
    assert probe_as_other_user(output, write=True) is None
    assert [p.name for p in output.iterdir()] == []  # the probe left nothing behind


def test_flatqc_web_masks_the_database_password_and_stops_on_sigterm(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLATQC_")} | {
        "FLATQC_DB_URL": pg_url, "FLATQC_DB_PASSWORD": ODD, "FLATQC_RUN_DIR": str(tmp_path / "run"),
        "FLATQC_QC_OUTPUT": str(tmp_path), "PYTHONPATH": str(ROOT)}
    web = subprocess.Popen([sys.executable, "-m", "flatqc", "web", "--port", str(port)], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    return json.load(answer)["healthy"] is True
            except OSError:
                return web.poll() is not None
        wait_for(healthy, 30, "the dashboard")
        web.send_signal(signal.SIGTERM)
        assert web.wait(5) == 0
    finally:
        web.kill()
        output = web.communicate()[0]
    assert f"(database {masked(with_password(pg_url, ODD))})" in output and "***@" in output, output
    assert ODD not in output and quote(ODD, safe="") not in output


def test_status_counts_scheduled_picture_retries(redis_url: str) -> None:
    settings = Settings(redis_url=redis_url)
    redis = redis_connection(redis_url)
    pictures_queue(settings, redis).enqueue_in(timedelta(minutes=5), "worker.jobs.draw_set_pictures", "0" * 64)
    assert queue_status(settings, redis).scheduled == 1


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_compose_file_follows_the_compose_spec_and_names_real_settings() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    fields = {f"FLATQC_{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        unknown = {k for k in service.get("environment", {}) if k.startswith("FLATQC_")} - fields
        assert not unknown, f"{name}: {unknown} are no settings"


def test_the_systemd_units_verify() -> None:
    if shutil.which("systemd-analyze") is None:
        unavailable("no systemd-analyze")
    flatqc = Path(sys.executable).parent / "flatqc"  # the units name /opt/flatqc/.venv/bin/flatqc: here, this one
    units = {"flatqc-watcher.service": "flatqc-watcher.service", "flatqc-worker@.service": "flatqc-worker@1.service"}
    with tempfile.TemporaryDirectory() as folder:
        for source, instance in units.items():
            text = (ROOT / "deploy" / source).read_text()
            assert "/opt/flatqc/.venv/bin/flatqc " in text
            (Path(folder) / instance).write_text(text.replace("/opt/flatqc/.venv/bin/flatqc ", f"{flatqc} "))
        result = subprocess.run(["systemd-analyze", "verify", *units.values()], cwd=folder, capture_output=True,
                                text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_the_readme_names_deploy_files_that_exist() -> None:
    section = (ROOT / "README.md").read_text().split("### Running it for real")[1].split("\n### ")[0]
    named = set(re.findall(r"`(?:deploy/)?(flatqc[\w.@-]*\.(?:service|run|env\.example))`", section))
    assert named and all((ROOT / "deploy" / name).is_file() for name in named), named


def test_constraints_pin_what_is_installed() -> None:
    """constraints.txt is the closure of the project's dependencies at the versions installed (``make test``
    installs with it; a dependency added to pyproject.toml without ``make constraints`` fails here)."""
    result = subprocess.run([sys.executable, "deploy/constraints.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    assert result.stdout == (ROOT / "constraints.txt").read_text()
