"""Operator commands against a real Redis and database: backfill (with --force), worker --burst, status, alerts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flatqc.cli import main
from flatqc.settings import Settings, settings_env
from flatqc.synthetic_delivery import delivery_plan
from qc.synth import load_manifest
from tests.service_helpers import finished_events, qc1_count, service_settings, set_states, work_here

pytestmark = [pytest.mark.service, pytest.mark.slow]


SETS = ("snr_pass", "snr_fail", "overexposed", "inconsistent_dit", "incomplete")
"""A pass, an S/N and a max-flux failure, a rejected and an incomplete set, and the junk files: every state the
commands show, with 3 sets to process instead of the night's 7."""


@pytest.fixture()
def night_env(synth_night: Path, tmp_path: Path, redis_url: str, sqlite_url: str,
              monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A tree holding SETS and the junk already (files that arrived before the service existed)."""
    tree = tmp_path / "tree"
    shutil.copytree(synth_night / "reference", tree / "reference")
    for item in delivery_plan(synth_night, SETS, junk=True):
        (tree / item.relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(synth_night / item.relative, tree / item.relative)
    env = settings_env(service_settings(tree, sqlite_url, redis_url)) | {"FLATQC_REDIS_URL": redis_url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def burst_worker(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "flatqc", "worker", "--burst"], env=os.environ | env, check=True,
                   timeout=300)


def test_backfill_status_force_and_ack(night_env: dict[str, str], synth_night: Path) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    db_url = Settings().db_url
    chosen = [s for s in manifest.sets if s.name in SETS]
    done = [s for s in chosen if s.expected_verdict in ("passed", "failed", "not_assessable")]
    assert len(chosen) == len(SETS) and len(done) == 3

    out = run("backfill", "--from", "2010-05-11", "--to", "2010-05-13")
    assert "files looked at" in out
    status = json.loads(run("status", "--json"))
    assert status["queue"]["waiting"] == {"flatqc": 0, "flatqc-pictures": 0, "flatqc-backfill": len(done)}
    assert status["nights"][0]["backfill"] == {"sets": len(done), "done": 0, "waiting": len(done)}
    assert f"backfill: 0 of {len(done)} sets done, {len(done)} waiting" in run("status")
    burst_worker(night_env)
    states = set_states(db_url)
    assert all(states[s.set_id] == "done" for s in done)
    assert qc1_count(db_url) == 4 * len(done)

    status = json.loads(run("status", "--json", "--files"))
    (night,) = status["nights"]
    assert night["sets"]["done"] == len(done) and night["verdicts"]["failed"] == 2
    assert night["backfill"] == {"sets": len(done), "done": len(done), "waiting": 0}
    assert night["sets"]["rejected"] == 1 and night["files_rejected"] >= 3
    reasons = {Path(f["path"]).name: f["reason"] for f in status["files"]}
    for junk in manifest.junk:
        assert junk.expected_reason in reasons[Path(junk.path).name]
    assert "QC_notes.fits" in run("status", "--files") and "QC_notes.fits" not in run("status")
    assert any(r["reason"].startswith("not a FITS file") for r in status["file_reasons"])

    run("backfill", "--from", "2010-05-12", "--to", "2010-05-12", "--force")
    assert json.loads(run("status", "--json"))["queue"]["waiting"]["flatqc-backfill"] >= len(done)
    work_here(Settings(), night_env["FLATQC_REDIS_URL"])  # `flatqc worker --burst` itself ran above
    assert qc1_count(db_url) == 4 * len(done)  # reprocessed, replaced, never duplicated
    assert finished_events(db_url) == {s.set_id: 2 for s in done}

    listing = run("alerts", "--open")
    assert listing.count("open") >= 2
    run("alerts", "ack", "1", "--by", "night-astronomer", "--comment", "known lamp problem")
    assert "night-astronomer" in run("alerts")
    result = CliRunner().invoke(main, ["alerts", "ack", "1"])
    assert result.exit_code == 2 and "no open alert #1" in result.output
