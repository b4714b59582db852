"""End to end: ``flatqc process`` on a synthetic night, checked against tests/simple_qc.py and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import create_engine, func, select

from flatqc.cli import main
from flatqc.db import crires_flat
from qc.records import QC1_NAMES
from qc.synth import load_manifest
from tests.simple_qc import simple_qc1


def run_process(night: Path, db_url: str, out: Path) -> dict:
    result = CliRunner().invoke(main, [
        "process", str(night / "dfs_product"), "--db", db_url, "--out", str(out),
        "--raw", str(night / "dfs_raw"), "--reference", str(night / "reference"), "--json",
    ])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def processed(synth_night: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    work = tmp_path_factory.mktemp("process")
    db_url = f"sqlite:///{work / 'qc1.db'}"
    return run_process(synth_night, db_url, work / "qc"), db_url, work


def test_verdicts_match_the_manifest(processed: tuple[dict, str, Path], synth_night: Path) -> None:
    report, _, _ = processed
    manifest = load_manifest(synth_night / "manifest.json")
    verdicts = {s["set_id"]: s for s in report["sets"]}
    for entry in manifest.sets:
        if entry.expected_verdict in ("passed", "failed", "not_assessable"):
            got = verdicts[entry.set_id]
            assert got["verdict"] == entry.expected_verdict, entry.name
            text = " ".join(got["reasons"] + got["notes"] + [got["reference"]])
            assert entry.expected_reason in text, (entry.name, text)
        elif entry.expected_verdict == "rejected":
            (rejected,) = [r for r in report["rejected_sets"] if r["set_id"] == entry.set_id]
            assert entry.expected_reason in rejected["reason"]
        else:
            (incomplete,) = [r for r in report["incomplete_sets"] if r["set_id"] == entry.set_id]
            assert entry.missing[0] in incomplete["missing"]


def test_junk_files_are_reported_with_reasons(processed: tuple[dict, str, Path], synth_night: Path) -> None:
    report, _, _ = processed
    manifest = load_manifest(synth_night / "manifest.json")
    notes = {Path(f["path"]).name: f for f in report["files"]}
    for junk in manifest.junk:
        note = notes[Path(junk.path).name]
        assert note["state"] == junk.expected_state
        assert junk.expected_reason in note["reason"]


def test_qc1_rows_equal_an_independent_implementation(processed: tuple[dict, str, Path], synth_night: Path) -> None:
    _, db_url, _ = processed
    manifest = load_manifest(synth_night / "manifest.json")
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = {(r.set_id, r.detector): r._mapping for r in conn.execute(select(crires_flat))}
    done = [s for s in manifest.sets if s.expected_verdict in ("passed", "failed", "not_assessable")]
    assert len(rows) == 4 * len(done)
    for entry in done:
        key = entry.setting_key
        ref = synth_night / "reference"
        ref_master = ref / f"CRIRES_FLAT_{key}.fits" if entry.has_reference else None
        ref_bpm = ref / f"CRIRES_BPM_{key}.fits" if entry.has_reference else None
        for det in (1, 2, 3, 4):
            expected = simple_qc1([synth_night / r for r in entry.raws], synth_night / entry.master,
                                  synth_night / entry.bpm, ref_master, ref_bpm, det)
            row = rows[(entry.set_id, det)]
            for name in QC1_NAMES:
                if expected[name] is None:
                    assert row[name] is None, (entry.name, det, name)
                else:
                    assert row[name] == pytest.approx(expected[name], rel=1e-5, abs=1e-9), (entry.name, det, name)
            assert row["n_raw"] == entry.n_raw and row["raw_type"] == entry.raw_type
            assert row["setting_key"] == key and row["night"] == manifest.night
            assert row["certified"] == (entry.expected_verdict != "failed")


def test_no_rows_for_rejected_or_incomplete_sets(processed: tuple[dict, str, Path], synth_night: Path) -> None:
    _, db_url, _ = processed
    manifest = load_manifest(synth_night / "manifest.json")
    bad = [s.set_id for s in manifest.sets if s.expected_verdict in ("rejected", "incomplete")]
    with create_engine(db_url).connect() as conn:
        assert conn.execute(select(func.count()).where(crires_flat.c.set_id.in_(bad))).scalar() == 0


def test_pictures_are_written_per_set(processed: tuple[dict, str, Path]) -> None:
    report, _, _ = processed
    for entry in report["sets"]:
        assert sorted(entry["plots"]) == ["cover", "flat1", "flat2", "flat3", "flat4", "flat5"]
        for path in entry["plots"].values():  # palette PNGs: a text-only panel is < 10 kB, so check the pixels
            with Image.open(path) as image:
                assert image.width >= 1000 and image.height >= 400, path
                assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 8, path


def test_reprocessing_replaces_rows(processed: tuple[dict, str, Path], synth_night: Path) -> None:
    _, db_url, work = processed
    with create_engine(db_url).connect() as conn:
        before = conn.execute(select(func.count()).select_from(crires_flat)).scalar()
    run_process(synth_night, db_url, work / "qc")
    with create_engine(db_url).connect() as conn:
        assert conn.execute(select(func.count()).select_from(crires_flat)).scalar() == before


def test_usage_error_exits_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["process", str(tmp_path / "does-not-exist")])
    assert result.exit_code == 2
