"""A first run that stays useful: ``flatqc process`` over a whole service tree, the demo's settings found by the
other commands, the dashboard saying that its QC output is missing, one log line for an expected retry."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flatqc.cli import main
from flatqc.demo import look_again, write_config
from flatqc.settings import DEMO_CONFIG, Settings
from flatqc.web.app import create_app
from tests.service_helpers import chosen


@pytest.mark.slow
def test_process_over_a_service_tree_skips_results_and_finds_references(
        synth_night: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = tmp_path / "tree"
    for sub in ("dfs_product", "dfs_raw", "reference"):
        shutil.copytree(synth_night / sub, tree / sub)
    monkeypatch.setenv("FLATQC_QC_REFERENCE", str(tmp_path / "not-here"))  # found beside the products instead
    args = ["process", str(tree), "--db", f"sqlite:///{tmp_path / 'qc.db'}", "--out", str(tree / "qc")]
    first = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, [*args, "--alerts", "--json"], catch_exceptions=False)  # PNGs now in tree/qc
    report = json.loads(again.stdout)
    assert report["files"] == json.loads(first.stdout)["files"]  # the PNGs and references are not read
    assert not any("/qc/" in f["path"] or "/reference/" in f["path"] for f in report["files"])
    assert report["reference"] == str(tree / "reference") and report["pictures"] == str(tree / "qc")
    assert sorted(report["skipped"]) == [str(tree / "qc"), str(tree / "reference")]
    assert len(report["incomplete_sets"]) == 1  # the synthetic night's one incomplete set, no phantom
    with_reference = [s["reference"] for s in report["sets"] if s["setting_key"] == "3218.600_25.000_Halogen"]
    assert with_reference and all(note.startswith("reference CRIRES_FLAT_") for note in with_reference)
    kinds = sorted(a["severity"] for a in report["alerts"])
    assert kinds == ["alert", "alert", "warning"]
    one = chosen(synth_night, "snr_pass")  # the tables: one set is enough to see them say where results went
    members = [str(tree / relative) for relative in (one.master, one.bpm, *one.raws)]
    table = CliRunner().invoke(main, ["process", *members, *args[2:]], catch_exceptions=False).output
    assert one.set_id in table and "PASSED" in table and "1 sets processed" in table
    assert f"PNGs and cover sheets: {tree / 'qc'}/<night>/<set_id>/" in table
    assert "QC1 rows and set states: sqlite:///" in table


def test_the_demo_config_is_found_by_the_other_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("FLATQC_")]:
        monkeypatch.delenv(name)
    demo_root = DEMO_CONFIG.parent
    settings = Settings(dfs_product=demo_root / "tree/dfs_product", dfs_raw=demo_root / "tree/dfs_raw",
                        qc_reference=demo_root / "tree/reference", qc_output=demo_root / "tree/qc",
                        run_dir=demo_root / "run", db_url=f"sqlite:///{demo_root / 'flatqc.db'}")
    config = write_config(settings, DEMO_CONFIG)
    assert f"FLATQC_CONFIG={DEMO_CONFIG}" in look_again(config, 8080)
    empty = CliRunner().invoke(main, ["alerts"], catch_exceptions=False)
    assert empty.exit_code == 0 and f"FLATQC_CONFIG={DEMO_CONFIG} flatqc alerts" in empty.stderr
    monkeypatch.setenv("FLATQC_CONFIG", str(config))
    loaded = Settings()
    assert loaded.db_url == f"sqlite:///{(tmp_path / demo_root / 'flatqc.db').resolve()}"
    assert loaded.qc_output == (tmp_path / demo_root / "tree/qc").resolve()
    assert "FLATQC_CONFIG" not in CliRunner().invoke(main, ["alerts"], catch_exceptions=False).stderr


def test_healthz_reports_a_missing_qc_output_folder(tmp_path: Path) -> None:
    from flatqc.db import connect

    settings = Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}", qc_output=tmp_path / "nothing",
                        run_dir=tmp_path / "run")
    client = create_app(settings, connect(settings.db_url), None).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 503 and "does not exist" in answer.get_json()["qc_output"]
    (tmp_path / "nothing").mkdir()
    assert client.get("/healthz").get_json()["healthy"] is True


def test_an_expected_retry_is_one_log_line(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from rq.job import Job

    from flatqc.queue import redis_connection
    from worker.jobs import MemberChanged
    from worker.run import FlatqcWorker

    connection = redis_connection(redis_url)
    worker = FlatqcWorker(["flatqc"], connection=connection)
    job = Job.create("json.loads", args=["{}"], connection=connection)
    for error in (MemberChanged("master.fits does not hold the queued bytes"), ValueError("a real bug")):
        try:
            raise error
        except Exception:  # noqa: BLE001 - the exception info rq hands its handler
            with caplog.at_level(logging.INFO, logger="rq.worker"):
                caplog.clear()
                worker.handle_exception(job, *sys.exc_info())
        lines = [r.getMessage() for r in caplog.records if r.name == "rq.worker" and r.levelno >= logging.WARNING]
        if isinstance(error, MemberChanged):
            assert len(lines) == 1 and "does not hold the queued bytes" in lines[0]
            assert "\n" not in lines[0]
        else:
            assert "Traceback" in lines[0]
