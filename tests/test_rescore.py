"""``flatqc rescore`` over a generated history (60 sets, 20 nights) on SQLite and PostgreSQL: each night is scored
with the file in force for it (built-in, then a fixed file, then a statistical one), every score equal to the one
computed here from the rows by plain numpy; a second run changes nothing; a set rejected in review leaves the
statistical history of later rows, and comes back when accepted again."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.history import write_history
from flatqc.cli import main
from flatqc.db import connect
from qc.config import CRIRES_TREND_LIMITS

HIGH = 400.0
"""The fixed file's upper bound of mean_flux [ADU/s] (warn above): some settings of the history lie above it."""
WINDOW_DAYS, MIN_POINTS = 8.0, 3
FIXED = f'valid_from = {{night}}\n[[threshold]]\nparameter = "mean_flux"\nkind = "fixed"\nhigh = {HIGH}\n' \
        'severity = "warn"\n'
STATISTICAL = 'valid_from = {night}\n[[threshold]]\nparameter = "mean_flux"\nkind = "statistical"\n' \
              f'window_days = {WINDOW_DAYS:g}\nmin_points = {MIN_POINTS}\n'
COLUMNS = "set_id, detector, night, mjd_obs, setting_key, verdict, mean_flux, score_mean_flux, score, " \
          "thresholds_file, thresholds_sha256"


@pytest.fixture()
def history(db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The generated history, unscored, and a folder with the fixed file from the 5th night and the statistical
    one from the 11th."""
    engine = connect(db_url)
    write_history(engine, 60)
    with engine.connect() as conn:
        nights = list(conn.execute(text("SELECT DISTINCT night FROM crires_flat ORDER BY night")).scalars())
    folder = tmp_path / "thresholds"
    folder.mkdir()
    texts = {"fixed.toml": FIXED.format(night=nights[4]), "statistical.toml": STATISTICAL.format(night=nights[10])}
    for name, content in texts.items():
        (folder / name).write_text(content)
    yield {"engine": engine, "url": db_url, "folder": folder, "nights": nights, "fixed_from": nights[4],
           "statistical_from": nights[10], "sha256": {n: hashlib.sha256(t.encode()).hexdigest()
                                                      for n, t in texts.items()}}
    engine.dispose()


def flatqc(history: dict[str, Any], *args: str) -> Result:
    """``flatqc ARGS --db URL`` with the history's threshold folder."""
    env = {"FLATQC_THRESHOLDS_DIR": str(history["folder"]), "FLATQC_CONFIG": None, "FLATQC_SETTINGS_JSON": None}
    return CliRunner().invoke(main, [*args, "--db", history["url"]], env=env)


def rescore(history: dict[str, Any]) -> Result:
    done = flatqc(history, "rescore", "--from", history["nights"][0], "--to", history["nights"][-1])
    assert done.exit_code == 0, done.output
    return done


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(f"SELECT {COLUMNS} FROM crires_flat ORDER BY mjd_obs, set_id, detector")))


def rejected(engine: Engine) -> set[str]:
    """Sets whose decision in force is a rejection (plain SQL)."""
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT set_id FROM reviews WHERE replaced_by IS NULL AND "
                                     "decision = 'rejected'")).scalars())


def earlier_values(row: Any, every: list[Any], left_out: set[str]) -> np.ndarray:
    """mean_flux of the rows a statistical score of ``row`` looks back on (contract 9), picked here by hand."""
    return np.array([r.mean_flux for r in every if r.setting_key == row.setting_key and r.detector == row.detector
                     and row.mjd_obs - WINDOW_DAYS <= r.mjd_obs < row.mjd_obs and r.set_id != row.set_id
                     and r.verdict != "failed" and r.set_id not in left_out])


def expected(row: Any, every: list[Any], history: dict[str, Any], left_out: set[str]) -> tuple[str, str | None]:
    """(file, score of mean_flux) of ``row`` as contract 9 defines them."""
    if row.night >= history["statistical_from"]:
        earlier = earlier_values(row, every, left_out)
        if earlier.size < MIN_POINTS:
            return "statistical.toml", None
        centre = np.median(earlier)
        distance, spread = abs(row.mean_flux - centre), 1.4826 * np.median(np.abs(earlier - centre))
        return "statistical.toml", "fail" if distance > 5 * spread else "warn" if distance > 3 * spread else "ok"
    if row.night >= history["fixed_from"]:
        return "fixed.toml", "warn" if row.mean_flux > HIGH else "ok"
    limits = CRIRES_TREND_LIMITS.get(row.setting_key)  # built-in: the trend limits of contract 7 as warn
    if limits is None:
        return "built-in", None
    low, high = limits.mean_flux
    return "built-in", "ok" if (low is None or row.mean_flux >= low) and (high is None or row.mean_flux <= high) \
        else "warn"


def check_scores(history: dict[str, Any]) -> list[str | None]:
    """Every row scored as :func:`expected` says; returns the expected statistical scores."""
    every, left_out = rows(history["engine"]), rejected(history["engine"])
    statistical = []
    for row in every:
        file, score = expected(row, every, history, left_out)
        assert (row.thresholds_file, row.score_mean_flux) == (file, score), row
        assert row.thresholds_sha256 == history["sha256"].get(file)
        if file != "built-in":
            assert row.score == score  # the one parameter the file scores
        if file == "statistical.toml":
            statistical.append(score)
    return statistical


def snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    """Every row's score columns and every stored score detail (without the surrogate key)."""
    with engine.connect() as conn:
        details = list(conn.execute(text("SELECT set_id, detector, parameter, kind, score, value, low, high, centre, "
                                         "spread, n_points FROM scores ORDER BY set_id, detector, parameter, kind")))
    return rows(engine), details


def test_each_night_is_scored_with_its_file_and_a_second_run_changes_nothing(history: dict[str, Any]) -> None:
    first = rescore(history)
    statistical = check_scores(history)
    assert {"ok", "fail"} <= set(statistical), statistical  # the history's outliers fail
    with history["engine"].connect() as conn:
        per_file = dict(conn.execute(text("SELECT thresholds_file, COUNT(DISTINCT set_id) FROM crires_flat "
                                          "GROUP BY thresholds_file")).all())
    assert sum(per_file.values()) == 60 and len(per_file) == 3
    assert "60 sets of the nights" in first.stdout and "scored again, 60 changed" in first.stdout
    for name, count in per_file.items():
        assert f"thresholds file {name}: {count} sets" in first.stdout
    before = snapshot(history["engine"])
    again = rescore(history)
    assert "scored again, 0 changed" in again.stdout and "before -> after" not in again.stdout
    assert snapshot(history["engine"]) == before


def test_a_set_rejected_in_review_leaves_the_statistical_history(history: dict[str, Any]) -> None:
    rescore(history)
    accepted = snapshot(history["engine"])
    every = rows(history["engine"])
    target = next(r for r in reversed(every) if r.night >= history["statistical_from"]
                  and earlier_values(r, every, set()).size > MIN_POINTS)
    left_out = next(r.set_id for r in reversed(every) if r.setting_key == target.setting_key
                    and target.mjd_obs - WINDOW_DAYS <= r.mjd_obs < target.mjd_obs and r.verdict != "failed")
    decided = flatqc(history, "review", left_out, "--reject", "--by", "qc scientist", "--comment", "lamp flicker")
    assert decided.exit_code == 0, decided.output
    rescore(history)
    check_scores(history)
    earlier = earlier_values(target, every, {left_out})
    with history["engine"].connect() as conn:
        centre, n_points = conn.execute(text(
            "SELECT centre, n_points FROM scores WHERE set_id = :s AND detector = :d AND parameter = 'mean_flux' "
            "AND kind = 'statistical'"), {"s": target.set_id, "d": target.detector}).one()
    assert n_points == earlier.size == earlier_values(target, every, set()).size - 1
    assert centre == pytest.approx(float(np.median(earlier)), rel=1e-12)
    assert flatqc(history, "review", left_out, "--accept", "--by", "qc scientist").exit_code == 0
    rescore(history)
    assert snapshot(history["engine"]) == accepted


def test_a_broken_file_stops_rescore_before_anything_is_written(history: dict[str, Any]) -> None:
    (history["folder"] / "statistical.toml").write_text(STATISTICAL.format(night=history["nights"][10])
                                                        + "k_fail = 0\n")
    before = snapshot(history["engine"])
    done = flatqc(history, "rescore", "--from", history["nights"][0], "--to", history["nights"][-1])
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.stderr == "Error: statistical.toml, line 7, key 'k_fail': must be positive, not 0\n"
    assert snapshot(history["engine"]) == before
