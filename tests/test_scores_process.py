"""Scores end to end (contract 9): five synthetic CRIRES nights of one setting through ``flatqc process`` with a
folder of two dated threshold files (``FLATQC_THRESHOLDS_DIR``); every stored score compared with the plain
implementation (:mod:`tests.plain_scores`) computed from the stored QC1 values, verdicts and times; then a review
rejection and re-scoring as ``flatqc rescore`` does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from flatqc.cli import main
from flatqc.db import connect, crires_flat
from flatqc.lifecycle.reviews import decide
from flatqc.scoring import rescore_set, sets_to_rescore
from flatqc.threshold_files import load_thresholds
from qc.synth import SetSpec, write_set
from tests.plain_scores import PlainRow
from tests.score_paths import CONFIGS, Scenario, stored_of

KEY = "1090.400_25.000_Halogen"
NIGHTS = {  # night: (peak of the N = 1 set [ADU], whether an overexposed set (failed on max_flux) was taken too)
    "2010-05-10": (6000.0, False),
    "2010-05-11": (6060.0, True),
    "2010-05-12": (5940.0, False),
    "2010-05-13": (6030.0, True),
    "2010-05-14": (4500.0, False),  # the lamp got weaker
}
FIRST = """valid_from = 2010-05-01
[[threshold]]
parameter = "mean_level"
kind = "statistical"
window_days = 30
min_points = 2

[[threshold]]
parameter = "rms_master"
kind = "fixed"
high = 0.05
severity = "warn"
"""
SECOND = """valid_from = 2010-05-13  # k tightened, max_flux limited
[[threshold]]
parameter = "mean_level"
kind = "statistical"
min_points = 3
k_warn = 2
k_fail = 4

[[threshold]]
parameter = "max_flux"
kind = "fixed"
high = 12000.0
"""
FILES = {"first.toml": FIRST, "second.toml": SECOND}


def write_history(root: Path) -> None:
    """Each night's sets (raws, master, BPM) under ``root/dfs_product/FLAT/<night>`` and ``root/dfs_raw/<night>``,
    observed from 10:00 UTC of the next day on."""
    for day, (night, (peak, overexposed)) in enumerate(NIGHTS.items()):
        rng = np.random.default_rng(day)
        mjd = 55326.0 + day + 1 + 10 / 24  # 2010-05-10 is MJD 55326
        specs = [SetSpec(f"flat_{night}", 1090.4, 25.0, "Halogen", 1, peak, "not_assessable")]
        if overexposed:
            specs.append(SetSpec(f"overexposed_{night}", 1090.4, 25.0, "Halogen", 1, 14000.0, "failed"))
        for spec in specs:
            _, mjd = write_set(spec, root / "dfs_product" / "FLAT" / night, root / "dfs_raw" / night, night, rng, mjd)


def stored_rows(engine: Any) -> list[PlainRow]:
    """The QC1 rows as the plain implementation reads them."""
    with engine.connect() as conn:
        rows = conn.execute(select(crires_flat)).mappings().all()
    return [PlainRow(r["set_id"], r["mjd_obs"], {p: r[p] for p in ("mean_level", "rms_master", "max_flux")},
                     detector=r["detector"], setting_key=r["setting_key"], night=r["night"], verdict=r["verdict"])
            for r in rows]


@pytest.mark.slow
def test_flatqc_process_stores_the_scores_of_the_plain_implementation(tmp_path: Path, sqlite_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root, folder = tmp_path / "data", tmp_path / "thresholds"
    write_history(root)
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    (tmp_path / "reference").mkdir()
    monkeypatch.setenv("FLATQC_THRESHOLDS_DIR", str(folder))
    answer = CliRunner().invoke(main, ["process", str(root / "dfs_product"), "--db", sqlite_url, "--out",
                                       str(tmp_path / "qc"), "--raw", str(root / "dfs_raw"), "--reference",
                                       str(tmp_path / "reference"), "--json"])
    assert answer.exit_code == 0, answer.output
    assert len(json.loads(answer.stdout)["sets"]) == 7
    engine = connect(sqlite_url)
    rows = stored_rows(engine)
    by_night = {r.night: r.set_id for r in rows if r.verdict != "failed"}
    assert {r.verdict for r in rows} == {"not_assessable", "failed"} and len(by_night) == 5

    def expected(set_id: str) -> dict[int, Any]:
        return Scenario(tuple(rows), set_id, FILES).plain()

    set_ids = sorted({r.set_id for r in rows})
    assert {s: stored_of(engine, "crires", s) for s in set_ids} == {s: expected(s) for s in set_ids}
    files = {s: {d.thresholds_file for d in expected(s).values()} for s in by_night.values()}
    assert [files[by_night[n]] for n in NIGHTS] == [{"first.toml"}] * 3 + [{"second.toml"}] * 2
    sha = {d.thresholds_sha256 for d in expected(by_night["2010-05-14"]).values()}
    assert sha == {hashlib.sha256((folder / "second.toml").read_bytes()).hexdigest()}
    # By hand: no history on the first night; the weaker lamp fails; the failed sets' 14000 ADU never count
    first, last = expected(by_night["2010-05-10"]), expected(by_night["2010-05-14"])
    assert {d: s.columns["score_mean_level"] for d, s in first.items()} == dict.fromkeys(range(1, 5))
    assert {d: s.columns["score_rms_master"] for d, s in first.items()} == dict.fromkeys(range(1, 5), "warn")
    assert {d: (s.columns["score_mean_level"], s.details[1][7]) for d, s in last.items()} == dict.fromkeys(
        range(1, 5), ("fail", 4))

    # The set of 2010-05-13 rejected in review leaves the history of 2010-05-14 (3 points: still scored)
    with engine.begin() as conn:
        decide(conn, [by_night["2010-05-13"]], "rejected", "tester", "lamp flicker")
    thresholds = load_thresholds(folder, CONFIGS)
    again = {r.set_id: r for table, s in sets_to_rescore(engine, "2010-05-10", "2010-05-14")
             if (r := rescore_set(engine, thresholds, table, s)) is not None}
    assert set(again) == set(set_ids)
    plain = {s: Scenario(tuple(rows), s, FILES, ((by_night["2010-05-13"], "rejected"),)).plain() for s in set_ids}
    assert {s: stored_of(engine, "crires", s) for s in set_ids} == plain
    assert {d: s.details[1][7] for d, s in plain[by_night["2010-05-14"]].items()} == dict.fromkeys(range(1, 5), 3)
    assert all(r.before == r.after for s, r in again.items() if s != by_night["2010-05-14"])
    engine.dispose()
