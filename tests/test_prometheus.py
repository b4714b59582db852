"""deploy/prometheus: the alert rules under ``promtool test rules``, the files valid, and a real Prometheus scraping a
running ``flatqc web`` that sees every series the rules and the Grafana dashboard use, and evaluates the rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flatqc.compose import service_queue
from flatqc.db import connect
from flatqc.queue import redis_connection
from flatqc.redis_server import free_port
from flatqc.settings import Settings, settings_env
from tests.conftest import unavailable
from tests.service_helpers import service_settings, wait_for
from watcher.core import Watcher

DEPLOY = Path(__file__).resolve().parents[1] / "deploy/prometheus"
RULES, RULE_TESTS = DEPLOY / "flatqc-rules.yml", DEPLOY / "flatqc-rules.test.yml"
DASHBOARD = DEPLOY / "grafana-dashboard.json"


def binary(name: str) -> str:
    """The path of a Prometheus binary (Debian package ``prometheus``); skipped locally, failed in CI if missing."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} not installed (apt-get install -y prometheus)")
    return str(path)


def promtool(*args: str) -> str:
    result = subprocess.run([binary("promtool"), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name)


def test_the_rules_and_the_example_scrape_configuration_are_valid() -> None:
    assert "SUCCESS: 11 rules found" in promtool("check", "rules", RULES.name)
    promtool("check", "config", "prometheus.yml")


def series_used() -> set[str]:
    """Every ``flatqc_*`` series named by the alert rules or the dashboard's queries."""
    queries = [RULES.read_text()]
    queries += [t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]
    return {name for text in queries for name in re.findall(r"\bflatqc_[a-z0-9_]+", text)}


def test_the_dashboard_is_grafana_json_over_the_service_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "flatqc" and dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) >= 10 and all(p["targets"] for p in dashboard["panels"])
    assert {"flatqc_watcher_last_round_timestamp_seconds", "flatqc_workers", "flatqc_queue_depth"} <= series_used()


def query(port: int, path: str, **params: str) -> Any:
    """The ``data`` of an answer of Prometheus's HTTP API."""
    url = f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


def answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def running(command: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """A subprocess (output to ``log``), terminated at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def processed_service(night: Path, work: Path, redis_url: str) -> Settings:
    """The synthetic night recorded by the watcher, a full watcher round, and every job done by a real worker."""
    tree = work / "tree"
    for sub in ("dfs_product", "dfs_raw", "reference"):
        shutil.copytree(night / sub, tree / sub)
    (tree / "qc").mkdir()
    settings = service_settings(tree, f"sqlite:///{work / 'flatqc.db'}", redis_url)
    engine = connect(settings.db_url)
    watcher = Watcher(settings, engine, service_queue(settings, redis_connection(redis_url)))
    watcher.record_paths(sorted(p for p in tree.rglob("*") if p.is_file() and "reference" not in p.parts))
    watcher.full_round()
    engine.dispose()
    env = os.environ | settings_env(settings) | {"FLATQC_REDIS_URL": redis_url}
    subprocess.run([sys.executable, "-m", "flatqc", "worker", "--burst"], env=env, check=True, timeout=300)
    return settings


@pytest.mark.slow
def test_prometheus_scrapes_a_running_flatqc_web(synth_night: Path, tmp_path: Path, redis_url: str) -> None:
    prometheus = binary("prometheus")
    settings = processed_service(synth_night, tmp_path, redis_url)
    web_port, prom_port = free_port(), free_port()
    env = os.environ | settings_env(settings) | {"FLATQC_WEB_PORT": str(web_port), "FLATQC_REDIS_URL": redis_url}
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "flatqc", "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}]}],
    }))
    with running([sys.executable, "-m", "flatqc", "web"], tmp_path / "web.log", env) as web, \
            running([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{prom_port}"], tmp_path / "prometheus.log") as server:
        wait_for(lambda: answers(web_port, "/healthz") or web.poll() is not None, 60, "flatqc web")
        wait_for(lambda: answers(prom_port, "/-/ready") or server.poll() is not None, 60, "Prometheus")

        def scraped() -> bool:
            up = query(prom_port, "/api/v1/query", query='up{job="flatqc"}')["result"]
            return bool(up) and up[0]["value"][1] == "1"

        wait_for(scraped, 60, "a successful scrape of flatqc web")
        missing = sorted(name for name in series_used()
                         if not query(prom_port, "/api/v1/query", query=name)["result"])
        assert not missing, f"series the rules or the dashboard use but Prometheus does not have: {missing}"
        (round_ts,) = query(prom_port, "/api/v1/query", query="flatqc_watcher_last_round_timestamp_seconds")["result"]
        assert round_ts["metric"]["instance"] == f"127.0.0.1:{web_port}"

        def evaluated() -> bool:
            groups = query(prom_port, "/api/v1/rules")["groups"]
            return bool(groups) and all(r["lastEvaluation"] > "0001-01-01T00:00:00Z" for r in groups[0]["rules"])

        wait_for(evaluated, 30, "the rules evaluated")
        (group,) = query(prom_port, "/api/v1/rules")["groups"]
        assert len(group["rules"]) == 11 and all(r["health"] == "ok" for r in group["rules"]), group["rules"]

        def active() -> set[str]:
            return {a["labels"]["alertname"] for a in query(prom_port, "/api/v1/alerts")["alerts"]}

        # the burst worker has left; all else is well (a scrape slower than its timeout on a busy machine makes
        # FlatqcDown pending until the next scrape succeeds)
        wait_for(lambda: active() == {"FlatqcNoLiveWorker"}, 60, "FlatqcNoLiveWorker alone")
