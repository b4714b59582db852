"""The synthetic history (qc/synth_history.py): deterministic, headers as planned, and once processed by the batch path
of ``flatqc process`` its mean_flux follows the drift and drops by the step on the step's night, so that the
statistical scores of contract 9 (median +- 1.4826 MAD of the earlier rows) flag the change and nothing before it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from flatqc.batch import process_paths
from flatqc.cli import main
from flatqc.db import connect
from flatqc.settings import Settings
from qc.sets import night_of
from qc.synth_history import HISTORY_MANIFEST, HISTORY_SETTINGS, history_plan, write_history

DRIFT, STEP = 0.0015, 0.8
"""The generator's defaults, written out here: the test computes what they should do on its own."""


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.fits"))}


def test_the_plan_is_deterministic_and_has_the_drift_and_the_step() -> None:
    plan = history_plan("2010-05-12", days=20, seed=3)
    assert plan == history_plan("2010-05-12", days=20, seed=3)
    assert plan != history_plan("2010-05-12", days=20, seed=4)
    assert plan.nights[0] == "2010-04-22" and plan.nights[-1] == "2010-05-12" and len(plan.nights) == 21
    first = date.fromisoformat(plan.nights[0])
    assert plan.step_night == "2010-05-05"  # two thirds of the way: night index 20 * 2 // 3 = 13
    for planned in plan.sets:
        k = (date.fromisoformat(planned.night) - first).days
        stepped = planned.setting.name == "H1645" and planned.night >= "2010-05-05"
        expected = (1 - DRIFT) ** k * (STEP if stepped else 1.0) * planned.jitter
        assert planned.lamp_factor == pytest.approx(expected, rel=1e-12)
        assert abs(planned.jitter - 1) < 5 * 0.005
        assert night_of(Path("x.fits"), planned.start_mjd) == planned.night  # afternoon before the night
    for night in plan.nights:
        tonight = plan.sets_of([night])
        for setting in HISTORY_SETTINGS:
            n_raws = [p.n_raw for p in tonight if p.setting == setting]
            assert n_raws in ([3], [3, 3])
    assert any(len(plan.sets_of([n])) > len(HISTORY_SETTINGS) for n in plan.nights)  # some second sets
    with pytest.raises(ValueError, match="no history setting"):
        history_plan("2010-05-12", days=3, step_setting="X")


def test_written_sets_are_the_same_bytes_for_a_seed_and_their_headers_say_the_plan(tmp_path: Path) -> None:
    plan = history_plan("2010-05-12", days=1, seed=5)
    manifest = write_history(tmp_path / "a", plan)
    write_history(tmp_path / "b", plan, nights=["2010-05-12"])  # one night alone: the same bytes as with the rest
    whole, alone = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert alone and all(whole[name] == digest for name, digest in alone.items())
    assert json.loads((tmp_path / "a" / HISTORY_MANIFEST).read_text()) == manifest
    assert len(manifest["sets"]) == len(plan.sets)
    for entry, planned in zip(manifest["sets"], plan.sets, strict=True):
        assert entry["lamp_factor"] == planned.lamp_factor and entry["night"] == planned.night
        assert Path(entry["master"]).parts[:3] == ("dfs_product", "FLT_WIN", planned.night)
        assert len(entry["raws"]) == planned.n_raw
        for index, raw in enumerate(entry["raws"]):
            assert Path(raw).parts[:2] == ("dfs_raw", planned.night)
            header = fits.getheader(tmp_path / "a" / raw)
            assert header["MJD-OBS"] == pytest.approx(planned.start_mjd + index * 45 / 86400, abs=1e-9)
            assert night_of(Path(raw).with_name("x.fits"), header["MJD-OBS"]) == planned.night
            assert header["DATE-OBS"].startswith(planned.night)
            assert header["HIERARCH ESO DET DIT"] == planned.setting.dit
            assert header["HIERARCH ESO DET WINDOW NY"] == 32
            assert header["HIERARCH ESO INS WLEN CWLEN"] == planned.setting.cwlen
        with fits.open(tmp_path / "a" / entry["master"]) as master:
            assert master["CHIP1.INT1"].data.shape == (32, 1024)
            names = {master[0].header[f"HIERARCH ESO PRO REC1 RAW{i} NAME"] for i in range(1, planned.n_raw + 1)}
        assert names == {Path(r).name for r in entry["raws"]}


def contract9_scores(rows: list[tuple[float, float]], min_points: int = 5, k_warn: float = 3.0,
                     k_fail: float = 5.0, window_days: float = 90.0) -> list[str | None]:
    """Statistical score of each ``(mjd, value)`` against the earlier rows of the last ``window_days`` (contract 9)."""
    scores: list[str | None] = []
    for mjd, value in rows:
        earlier = np.array([v for t, v in rows if mjd - window_days <= t < mjd])
        if len(earlier) < min_points:
            scores.append(None)
            continue
        centre = np.median(earlier)
        spread = 1.4826 * np.median(np.abs(earlier - centre))
        distance = abs(value - centre)
        scores.append("fail" if distance > k_fail * spread else "warn" if distance > k_warn * spread else "ok")
    return scores


@pytest.mark.slow
def test_processed_history_shows_the_drift_and_the_step_and_scores_flag_the_step(tmp_path: Path) -> None:
    setting = next(s for s in HISTORY_SETTINGS if s.name == "H1645")
    plan = history_plan("2010-05-12", days=13, seed=2, settings=(setting,), step_setting="H1645",
                        step_night="2010-05-10", second_set_chance=0.0)
    write_history(tmp_path / "tree", plan)
    (tmp_path / "thresholds").mkdir()
    (tmp_path / "thresholds" / "t.toml").write_text(
        'valid_from = 2006-01-01\n[[threshold]]\nparameter = "mean_flux"\nkind = "statistical"\n')
    settings = Settings(qc_output=tmp_path / "qc", qc_reference=tmp_path / "no-reference",
                        dfs_raw=tmp_path / "tree" / "dfs_raw", db_url=f"sqlite:///{tmp_path / 'qc1.db'}",
                        thresholds_dir=tmp_path / "thresholds")
    engine = connect(settings.db_url)
    try:
        report = process_paths([tmp_path / "tree" / "dfs_product"], settings, engine, jobs=2)
    finally:
        engine.dispose()
    assert len(report.done) == 14 and not report.failed_sets and not report.incomplete
    assert {o.result.certification.verdict for _, o in report.done} == {"passed"}
    jitter = {p.night: p.jitter for p in plan.sets}
    with closing(sqlite3.connect(tmp_path / "qc1.db")) as db:
        for detector in range(1, 5):
            rows = db.execute("SELECT night, mjd_obs, mean_flux, dit, ndit, score_mean_flux FROM crires_flat "
                              "WHERE detector = ? ORDER BY mjd_obs", (detector,)).fetchall()
            assert [r[0] for r in rows] == list(plan.nights)
            assert {(r[3], r[4]) for r in rows} == {(15.0, 1)}  # a fixed exposure: the lamp shows in mean_flux
            flux = np.array([r[2] for r in rows])
            factor = np.array([(1 - DRIFT) ** k * (STEP if night >= "2010-05-10" else 1.0) * jitter[night]
                               for k, night in enumerate(plan.nights)])
            np.testing.assert_allclose(flux / flux[0], factor / factor[0], rtol=5e-4)
            step_at = plan.nights.index("2010-05-10")
            drop = flux[step_at] / flux[step_at - 1]
            assert drop == pytest.approx(STEP * (1 - DRIFT) * jitter["2010-05-10"] / jitter["2010-05-09"], rel=5e-4)
            scores = contract9_scores([(r[1], r[2]) for r in rows])
            assert scores[:5] == [None] * 5
            assert "fail" not in scores[5:step_at], scores  # the drift alone is not flagged
            assert scores[step_at:] == ["fail"] * (len(rows) - step_at), scores
            assert [r[5] for r in rows] == scores  # the service's scores (flatqc/scoring.py) say the same


@pytest.mark.slow
def test_synth_writes_a_history_with_the_night(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path), "--set", "single_flat",
                                       "--history-days", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / HISTORY_MANIFEST).read_text())
    assert manifest["nights"] == ["2010-05-10", "2010-05-11", "2010-05-12"]
    assert all((tmp_path / entry["master"]).is_file() for entry in manifest["sets"])
    assert (tmp_path / "manifest.json").is_file()
    assert "history of" in result.output


def test_synth_history_is_for_crires_and_documented(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "out"), "--profile", "crires+",
                                       "--history-days", "2"])
    assert result.exit_code == 2 and "--history-days" in result.output and not (tmp_path / "out").exists()
    assert "--history-days" in CliRunner().invoke(main, ["synth", "--help"]).output
