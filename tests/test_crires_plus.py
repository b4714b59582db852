"""CRIRES+ end to end: ``flatqc process`` on a small CRIRES+ night against tests/simple_qc.py, and one service
(the ``flatqc up`` equivalent) processing a night that mixes CRIRES and CRIRES+ sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import create_engine, select

from flatqc.cli import main
from flatqc.db import alerts, connect, crires_flat, criresp_flat, sets
from flatqc.synthetic_delivery import deliver_file, delivery_plan
from flatqc.up import Service
from flatqc.web.app import create_app
from qc.records import QC1_NAMES
from qc.synth import load_manifest
from tests.service_helpers import FINAL, service_settings, set_states, wait_for
from tests.simple_qc import CRIRES_PLUS_BITS, simple_qc1_plus

pytestmark = pytest.mark.slow  # the CRIRES+ night is 8 raws of 48 MB: about 20 s to write and process

COMPARED = (*QC1_NAMES, *CRIRES_PLUS_BITS)


@pytest.fixture(scope="module")
def processed(crires_plus_night: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """``flatqc process --json`` of the CRIRES+ night and its ``criresp_flat`` rows keyed by (set_id, detector)."""
    work = tmp_path_factory.mktemp("process-crires-plus")
    db_url = f"sqlite:///{work / 'qc1.db'}"
    result = CliRunner().invoke(main, [
        "process", str(crires_plus_night / "dfs_product"), "--db", db_url, "--out", str(work / "qc"),
        "--raw", str(crires_plus_night / "dfs_raw"), "--reference", str(crires_plus_night / "reference"), "--json",
    ])
    assert result.exit_code == 0, result.output
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = {(r.set_id, r.detector): dict(r._mapping) for r in conn.execute(select(criresp_flat))}
        assert conn.execute(select(crires_flat)).first() is None
    engine.dispose()
    return json.loads(result.stdout), rows


def test_verdicts_match_the_manifest(processed: tuple[dict, dict], crires_plus_night: Path) -> None:
    report, _ = processed
    manifest = load_manifest(crires_plus_night / "manifest.json")
    verdicts = {s["set_id"]: s for s in report["sets"]}
    assert set(verdicts) == {s.set_id for s in manifest.sets}
    for entry in manifest.sets:
        got = verdicts[entry.set_id]
        assert got["verdict"] == entry.expected_verdict, entry.name
        assert entry.expected_reason in " ".join(got["reasons"]), entry.name
        assert ("37000" in " ".join(got["reasons"])) == (entry.expected_reason == "max_flux")


def test_qc1_rows_equal_an_independent_implementation(processed: tuple[dict, dict], crires_plus_night: Path) -> None:
    _, rows = processed
    night = crires_plus_night
    manifest = load_manifest(night / "manifest.json")
    assert len(rows) == 3 * len(manifest.sets)
    for entry in manifest.sets:
        ref = night / "reference"
        ref_master = ref / f"CRIRESP_FLAT_{entry.setting_key}.fits" if entry.has_reference else None
        ref_bpm = ref / f"CRIRESP_BPM_{entry.setting_key}.fits" if entry.has_reference else None
        for det in (1, 2, 3):
            expected = simple_qc1_plus([night / r for r in entry.raws], night / entry.master, night / entry.bpm,
                                       ref_master, ref_bpm, det)
            row = rows[(entry.set_id, det)]
            for name in COMPARED:
                if expected[name] is None:
                    assert row[name] is None, (entry.name, det, name)
                else:
                    assert row[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-9), (entry.name, det, name)
            assert row["setting_key"] == entry.setting_key and row["raw_type"] == "FLAT"
            assert row["wlen_id"] + "_" + row["decker"] == entry.setting_key
            assert row["vignetted_pixels"] == 2048 * 2048 - 2004 * 2040
    # the out-of-order bit marks the NaN gaps between the orders: about half of each detector
    assert all(0.3 < row["bpm_outoforder"] / 2048**2 < 0.7 for row in rows.values())


def test_pictures_are_written_at_display_size(processed: tuple[dict, dict]) -> None:
    report, _ = processed
    for entry in report["sets"]:
        assert sorted(entry["plots"]) == ["cover", "flat1", "flat2", "flat3", "flat4", "flat5", "flat6"]
        for name, path in entry["plots"].items():
            with Image.open(path) as image:
                assert 900 <= image.width <= 1400 and image.height >= 450, (name, image.size)


def deliver_night(night: Path, tree: Path, set_names: list[str] | None) -> None:
    for item in delivery_plan(night, set_names, junk=False):
        deliver_file(night / item.relative, tree / item.relative, item.mode, chunk_pause_s=0.05)


@pytest.mark.service
def test_one_service_handles_a_night_of_both_instruments(synth_night: Path, crires_plus_night: Path,
                                                         processed: tuple[dict, dict], tmp_path: Path,
                                                         redis_url: str, sqlite_url: str) -> None:
    crires_sets = [s for s in load_manifest(synth_night / "manifest.json").sets
                   if s.name in ("snr_pass", "overexposed")]
    plus_sets = load_manifest(crires_plus_night / "manifest.json").sets
    tree = tmp_path / "tree"
    for night in (synth_night, crires_plus_night):
        shutil.copytree(night / "reference", tree / "reference", dirs_exist_ok=True)
    service = Service(service_settings(tree, sqlite_url, redis_url), workers=2)
    service.start()
    try:
        deliver_night(synth_night, tree, [s.name for s in crires_sets])
        deliver_night(crires_plus_night, tree, None)
        wanted = [s.set_id for s in (*crires_sets, *plus_sets)]
        wait_for(lambda: all(set_states(sqlite_url).get(s) in FINAL for s in wanted), 280,
                 f"sets {wanted} to reach a final state")
    finally:
        service.stop()
    states = set_states(sqlite_url)
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        history = [tuple(r) for r in conn.execute(select(sets.c.set_id, sets.c.state, sets.c.reason))]
    assert all(states[s] == "done" for s in wanted), history
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        old = {(r.set_id, r.detector) for r in conn.execute(select(crires_flat))}
        plus = {(r.set_id, r.detector): dict(r._mapping) for r in conn.execute(select(criresp_flat))}
        alerted = sorted(a.set_id for a in conn.execute(select(alerts)))
    engine.dispose()
    assert old == {(s.set_id, det) for s in crires_sets for det in (1, 2, 3, 4)}
    _, one_shot = processed
    assert set(plus) == set(one_shot)
    for key, row in plus.items():
        for name in (*COMPARED, "verdict", "certified"):
            assert row[name] == pytest.approx(one_shot[key][name]), (key, name)
    failing = [s.set_id for s in (*crires_sets, *plus_sets) if s.expected_verdict == "failed"]
    assert alerted == sorted(failing)
    flatstab = (tree / "qc" / "trends" / "FLATSTAB.html").read_text()  # one report page over both instruments
    assert "crires 3218.600_25.000_Halogen mean_flux" in flatstab and "crires+ K2166_w_0.2 mean_flux" in flatstab
    client = create_app(service_settings(tree, sqlite_url, redis_url), connect(sqlite_url), None).test_client()
    plus_set = client.get(f"/api/sets/{plus_sets[0].set_id}").get_json()
    assert len(plus_set["qc1"]) == 3 and "bpm_outoforder" in plus_set["qc1_names"]
    assert "bpm_outoforder" in client.get(f"/sets/{plus_sets[0].set_id}").get_data(as_text=True)
    charts = client.get("/api/trends?table=criresp_flat&days=all").get_json()
    assert {c["key"] for c in charts} == {s.setting_key for s in plus_sets}
