"""End to end: ``flatqc process`` on a synthetic night, checked against tests/simple_qc.py and the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image
from sqlalchemy import create_engine, func, select

from flatqc.cli import main
from flatqc.db import crires_flat
from qc.records import QC1_NAMES
from qc.synth import load_manifest
from tests.conftest import ProcessedNight, copy_processed, run_process
from tests.service_helpers import chosen
from tests.simple_qc import simple_qc1


def test_verdicts_match_the_manifest(processed_night: ProcessedNight, synth_night: Path) -> None:
    report = processed_night.report
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


def test_junk_files_are_reported_with_reasons(processed_night: ProcessedNight, synth_night: Path) -> None:
    report = processed_night.report
    manifest = load_manifest(synth_night / "manifest.json")
    notes = {Path(f["path"]).name: f for f in report["files"]}
    for junk in manifest.junk:
        note = notes[Path(junk.path).name]
        assert note["state"] == junk.expected_state
        assert junk.expected_reason in note["reason"]


def test_qc1_rows_equal_an_independent_implementation(processed_night: ProcessedNight, synth_night: Path) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    engine = create_engine(processed_night.db_url)
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


def test_no_rows_for_rejected_or_incomplete_sets(processed_night: ProcessedNight, synth_night: Path) -> None:
    manifest = load_manifest(synth_night / "manifest.json")
    bad = [s.set_id for s in manifest.sets if s.expected_verdict in ("rejected", "incomplete")]
    engine = create_engine(processed_night.db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(crires_flat.c.set_id.in_(bad))).scalar() == 0
    engine.dispose()


def test_pictures_are_written_per_set(processed_night: ProcessedNight) -> None:
    for entry in processed_night.report["sets"]:
        assert sorted(entry["plots"]) == ["cover", "flat1", "flat2", "flat3", "flat4", "flat5", "flat6"]
        for path in entry["plots"].values():  # palette PNGs: a text-only panel is < 10 kB, so check the pixels
            with Image.open(path) as image:
                assert image.width >= 1000 and image.height >= 400, path
                assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or ()) > 8, path


def qc1_rows(db_url: str) -> dict[tuple[str, int], dict]:
    """QC1 rows by (set_id, detector); fails if a set has two rows for one detector."""
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(crires_flat))]
    engine.dispose()
    by_key = {(r["set_id"], r["detector"]): r for r in rows}
    assert len(by_key) == len(rows), "duplicated QC1 rows"
    return by_key


def test_reprocessing_replaces_rows(processed_night: ProcessedNight, synth_night: Path, tmp_path: Path) -> None:
    """One set processed again into a copy of the night's database: its 4 rows are replaced (new rows, same
    values), never added to; the other sets' rows are not touched."""
    copy = copy_processed(processed_night, tmp_path)
    before = qc1_rows(copy.db_url)
    entry = chosen(synth_night, "snr_pass")
    report = run_process(synth_night, copy.db_url, tmp_path / "qc", synth_night / entry.master,
                         synth_night / entry.bpm)
    assert [s["set_id"] for s in report["sets"]] == [entry.set_id]
    after = qc1_rows(copy.db_url)
    assert after.keys() == before.keys()
    for key, row in after.items():
        if key[0] != entry.set_id:
            assert row == before[key], key
            continue
        assert row["processed_at"] > before[key]["processed_at"], key
        for name in QC1_NAMES:
            assert row[name] == pytest.approx(before[key][name]), (key, name)


def test_sets_computed_in_two_processes_give_what_one_gives(processed_night: ProcessedNight, synth_night: Path,
                                                            tmp_path: Path) -> None:
    """``--jobs 2`` (the session's night) and ``--jobs 1``: the same QC1 rows, ids included (written in the same
    order), but for when they were written, and the same report."""
    serial = run_process(synth_night, f"sqlite:///{tmp_path / 'qc1.db'}", processed_night.out, jobs=1)
    assert len(serial["sets"]) > 1
    assert serial | {"database": ""} == processed_night.report | {"database": ""}
    unstamped = [{key: {k: v for k, v in row.items() if k != "processed_at"} for key, row in qc1_rows(url).items()}
                 for url in (processed_night.db_url, f"sqlite:///{tmp_path / 'qc1.db'}")]
    assert unstamped[0] == unstamped[1]


def test_usage_error_exits_non_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["process", str(tmp_path / "does-not-exist")])
    assert result.exit_code == 2
