"""A broken threshold file never costs a verdict or an alert: ``flatqc process`` and the QC job store the set without
scores (one log line naming file, line and key), ``flatqc status`` shows the error and the rows to score, ``flatqc
rescore`` scores them once the file is fixed, and ``flatqc up`` refuses to start on it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from flatqc.cli import main
from flatqc.db import connect
from tests.service_helpers import chosen, deliver_set, watcher_rig, work_here

BROKEN = 'valid_from = 2010-05-01\n[[threshold]]\nparameter = "mean_flux"\nkind = "fixed"\nlow = 900\nhigh = 200\n'
FIXED = 'valid_from = 2010-05-01\n[[threshold]]\nparameter = "mean_flux"\nkind = "fixed"\nlow = 200\nhigh = 900\n'
ERROR = "2010-05-01.toml, line 6, key 'high': high 200 is below low 900"
NIGHT = "2010-05-12"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """A threshold folder whose one file is broken (low above high)."""
    made = tmp_path / "thresholds"
    made.mkdir()
    (made / "2010-05-01.toml").write_text(BROKEN)
    return made


def qc1(db_url: str) -> list[Any]:
    """set_id, mean_flux and the score columns of every QC1 row, and the score details stored (plain SQL)."""
    engine = connect(db_url)
    with engine.connect() as conn:
        rows = list(conn.execute(text("SELECT set_id, detector, mean_flux, score_mean_flux, score, thresholds_file, "
                                      "thresholds_sha256 FROM crires_flat ORDER BY set_id, detector")))
        details = conn.execute(text("SELECT COUNT(*) FROM scores")).scalar_one()
    engine.dispose()
    return [*rows, details]


def open_alerts(db_url: str) -> list[tuple[str, str]]:
    engine = connect(db_url)
    with engine.connect() as conn:
        found = [tuple(r) for r in conn.execute(text("SELECT set_id, severity FROM alerts WHERE state = 'open'"))]
    engine.dispose()
    return found


def unscored(rows: list[Any]) -> bool:
    """Every row without scores nor file, and no score detail."""
    *qc1_rows, details = rows
    return bool(qc1_rows) and details == 0 and all(
        (r.score_mean_flux, r.score, r.thresholds_file, r.thresholds_sha256) == (None,) * 4 for r in qc1_rows)


def test_process_keeps_verdicts_and_alerts_then_rescore_scores_the_sets(
        synth_night: Path, folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db_url = f"sqlite:///{tmp_path / 'flatqc.db'}"
    env = {"FLATQC_THRESHOLDS_DIR": str(folder), "FLATQC_DB_URL": db_url, "FLATQC_RUN_DIR": str(tmp_path / "run"),
           "FLATQC_CONFIG": None, "FLATQC_SETTINGS_JSON": None, "FLATQC_REDIS_URL": None, "FLATQC_ALERT_URLS": None}

    def flatqc(*args: str) -> Result:
        done = CliRunner().invoke(main, list(args), env=env)
        assert done.exit_code == 0, done.output
        return done

    earlier, later = chosen(synth_night, "single_flat"), chosen(synth_night, "overexposed")
    with caplog.at_level(logging.WARNING, logger="flatqc.set_qc"):
        done = flatqc("process", *(str(synth_night / p) for s in (earlier, later) for p in (s.master, s.bpm)),
                      "--out", str(tmp_path / "qc"), "--raw", str(synth_night / "dfs_raw"), "--reference",
                      str(synth_night / "reference"), "--alerts", "--json")
    report = json.loads(done.stdout)
    assert [(s["set_id"], s["verdict"]) for s in report["sets"]] == [(earlier.set_id, "not_assessable"),
                                                                     (later.set_id, "failed")]
    assert f"threshold file broken: {ERROR}; sets are stored without scores" in done.stderr
    assert [r.getMessage() for r in caplog.records] == [
        f"set {s.set_id} stored without scores (flatqc rescore scores it once the file is fixed): {ERROR}"
        for s in (earlier, later)]
    assert open_alerts(db_url) == [(later.set_id, "alert")]
    assert unscored(qc1(db_url))

    status = json.loads(flatqc("status", "--json").stdout)
    assert status["thresholds"]["error"] == ERROR and status["thresholds"]["in_force"] is None
    assert status["unscored"] == {"rows": 8, "first_night": NIGHT, "last_night": NIGHT}
    shown = flatqc("status").stdout
    assert f"thresholds broken: {ERROR}; sets are stored without scores until it is fixed" in shown
    assert f"8 QC1 rows not scored (nights {NIGHT}..{NIGHT}): flatqc rescore --from {NIGHT} --to {NIGHT}" in shown

    (folder / "2010-05-01.toml").write_text(FIXED)
    status = json.loads(flatqc("status", "--json").stdout)
    assert status["thresholds"]["error"] is None and status["thresholds"]["in_force"]["name"] == "2010-05-01.toml"
    scored = flatqc("rescore", "--from", NIGHT, "--to", NIGHT).stdout
    assert "2 sets of the nights 2010-05-12..2010-05-12 scored again, 2 changed" in scored
    *rows, details = qc1(db_url)
    assert details == len(rows) == 8 and {r.thresholds_file for r in rows} == {"2010-05-01.toml"}
    assert all(r.score_mean_flux == ("ok" if 200 <= r.mean_flux <= 900 else "fail") for r in rows)
    assert "not scored" not in flatqc("status").stdout
    assert open_alerts(db_url) == [(later.set_id, "alert")]


def test_a_broken_rescore_is_refused_before_writing(folder: Path, tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["rescore", "--from", NIGHT, "--to", NIGHT, "--db",
                                     f"sqlite:///{tmp_path / 'flatqc.db'}"],
                              env={"FLATQC_THRESHOLDS_DIR": str(folder), "FLATQC_CONFIG": None})
    assert done.exit_code == 1 and done.stderr == f"Error: {ERROR}\n"
    assert not (tmp_path / "flatqc.db").exists()


def test_flatqc_up_refuses_to_start_on_a_broken_file(folder: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLATQC_")} | {
        "FLATQC_THRESHOLDS_DIR": str(folder), "FLATQC_RUN_DIR": str(tmp_path / "run"),
        "FLATQC_DB_URL": f"sqlite:///{tmp_path / 'flatqc.db'}", "FLATQC_WEB_PORT": "0"}
    done = subprocess.run([sys.executable, "-m", "flatqc", "up", "--workers", "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (f"Error: threshold file broken: {ERROR} (FLATQC_THRESHOLDS_DIR): fix it, then start "
                           "again\n")
    assert not (tmp_path / "run").exists()  # nothing started: no lock, no Redis


@pytest.mark.service
def test_the_qc_job_keeps_verdict_and_alert_on_a_broken_file(synth_night: Path, folder: Path, tmp_path: Path,
                                                             redis_url: str, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    entry = chosen(synth_night, "snr_fail")
    with watcher_rig(synth_night, tmp_path, redis_url, monkeypatch, thresholds_dir=folder) as rig:
        deliver_set(rig["night"], rig["tree"], entry)
        for _ in range(2):
            rig["clock"].now += 100
            rig["watcher"].full_round()
        with caplog.at_level(logging.WARNING, logger="flatqc.set_qc"):
            work_here(rig["settings"], redis_url)
        db_url = rig["settings"].db_url
        with rig["engine"].connect() as conn:
            states = list(conn.execute(text("SELECT state, verdict FROM sets WHERE set_id = :s AND version NOT LIKE "
                                            "'pending-%'"), {"s": entry.set_id}))
    assert [tuple(s) for s in states] == [("done", "failed")]
    assert (entry.set_id, "alert") in open_alerts(db_url)  # (and a trend-limit warning)
    assert unscored(qc1(db_url)) and len(qc1(db_url)) == 4 + 1
    assert [r.getMessage() for r in caplog.records if r.name == "flatqc.set_qc"] == [
        f"set {entry.set_id} stored without scores (flatqc rescore scores it once the file is fixed): {ERROR}"]
