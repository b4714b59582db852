"""Findings (certification reasons, notes, trend-limit warnings) are stored as data when the verdict is made, by the QC
job and by ``flatqc process`` alike, and the dashboard shows what is stored, never what it would compute."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select

from flatqc.cli import main
from flatqc.db import ALERT, WARNING, alerts, connect, crires_flat, findings, findings_from_json
from flatqc.files import path_text, sha256_file
from flatqc.lifecycle.sets import Members, SetKeys, claim_complete
from flatqc.settings import Settings
from flatqc.web.app import create_app
from qc.records import FindingKind
from qc.sets import set_id_for
from tests.simple_qc import simple_qc1
from tests.tiny_set import NIGHT, healthy_set, tiny_set, write_files
from worker import jobs

KEY = "1090.400_25.000_Halogen"
SNR_LIMIT, MAX_FLUX_LIMIT = 250.0, 10000.0
"""Contract 5 defaults."""
TREND_LIMITS = {"mean_flux": (200.0, 950.0), "rms_master": (0.08, 0.13)}
"""Contract 7, setting 1090.4 nm."""


def failing_set(rng: np.random.Generator) -> list:
    """Three raws at 1090.4 nm (DIT 10 s) failing on purpose: detector 2 noisy (S/N ~150 <= 250), a hot pixel of
    12000 ADU on detector 3 (max_flux > 10000), detector 4 faint (mean_flux ~150 < 200 ADU/s), the master of
    detector 1 spread 0.2 (rms_master > 0.13)."""
    level = {1: 6000.0, 2: 6000.0, 3: 6000.0, 4: 1500.0}
    noise = {1: 20.0, 2: 40.0, 3: 20.0, 4: 4.0}
    raws = [[(level[d] + noise[d] * rng.standard_normal((4, 1024))).astype(np.float32) for d in (1, 2, 3, 4)]
            for _ in range(3)]
    raws[0][2][2, 500] = 12000.0
    master = [(1 + (0.2 if d == 1 else 0.1) * rng.standard_normal((4, 1024))).astype(np.float32)
              for d in (1, 2, 3, 4)]
    bpm = [np.zeros((4, 1024), dtype=np.int16) for _ in (1, 2, 3, 4)]
    return tiny_set(raws, master, bpm, cwlen=1090.4)


def expected_findings(folder: Path, files: list) -> list[tuple]:
    """The contract's rules applied by hand to QC1 values computed by the independent implementation:
    ``(kind, parameter, detector, value, relation, limit, low, high)`` in the order made."""
    raws = [folder / f.name for f in files if f.kind == "raw"]
    master, bpm = (folder / next(f.name for f in files if f.kind == kind) for kind in ("master", "bpm"))
    values = {d: simple_qc1(raws, master, bpm, None, None, d) for d in (1, 2, 3, 4)}
    found: list[tuple] = []
    for d, q in values.items():
        if q["median_snr"] <= SNR_LIMIT:
            found.append(("certification", "median_snr", d, q["median_snr"], "<=", SNR_LIMIT, None, None))
        if q["max_flux"] > MAX_FLUX_LIMIT:
            found.append(("certification", "max_flux", d, q["max_flux"], ">", MAX_FLUX_LIMIT, None, None))
    for d, q in values.items():
        for name, (low, high) in TREND_LIMITS.items():
            if not low <= q[name] <= high:
                found.append(("trend_limit", name, d, q[name], *(("<", low) if q[name] < low else (">", high)),
                              low, high))
    return found


def run_process(tmp_path: Path, db_url: str) -> None:
    """``flatqc process --alerts``, as a person runs it."""
    answer = CliRunner().invoke(main, ["process", str(tmp_path / "dfs_product"), "--db", db_url, "--alerts",
                                       "--out", str(tmp_path / "qc"), "--raw", str(tmp_path / "raw"),
                                       "--reference", str(tmp_path / "reference"), "--json"])
    assert answer.exit_code == 0, answer.output


def run_job(tmp_path: Path, db_url: str, folder: Path, files: list) -> None:
    """The set claimed in the ledger, then the QC job run in this process (no Redis: no picture job queued)."""
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", qc_reference=tmp_path / "reference",
                        run_dir=tmp_path / "run", redis_url=None)
    ordered = [folder / f.name for f in sorted(files, key=lambda f: f.kind != "master") if f.kind != "raw"]
    ordered += [folder / f.name for f in files if f.kind == "raw"]
    members = Members(tuple(path_text(p) for p in ordered), tuple(sha256_file(p) for p in ordered))
    engine = jobs.prepare(settings).engine
    try:
        with engine.begin() as conn:
            claim_complete(conn, SetKeys(set_id_for([f.name for f in files if f.kind == "raw"]), NIGHT, "crires",
                                         KEY, 3), members, [], None)
        assert jobs.run_set_qc(members.version)["verdict"] == "failed"
    finally:
        jobs.release()


@pytest.mark.parametrize("made_by", ["flatqc process", "QC job"])
def test_stored_findings_are_the_ones_computed_independently(tmp_path: Path, db_url: str, made_by: str) -> None:
    files = failing_set(np.random.default_rng(18))
    folder = write_files(files, tmp_path)
    expected = expected_findings(folder, files)
    assert [(e[0], e[1], e[2]) for e in expected] == [  # the set fails as it was made to
        ("certification", "median_snr", 2), ("certification", "max_flux", 3), ("trend_limit", "rms_master", 1),
        ("trend_limit", "mean_flux", 4)]
    if made_by == "QC job":
        run_job(tmp_path, db_url, folder, files)
    else:
        run_process(tmp_path, db_url)
    engine = connect(db_url)
    with engine.connect() as conn:
        versions = set(conn.execute(select(crires_flat.c.version)).scalars())
        stored = conn.execute(select(findings).order_by(findings.c.id)).all()
        raised = {r.severity: findings_from_json(r.reasons) for r in conn.execute(select(alerts))}
    engine.dispose()
    assert {r.version for r in stored} == versions and len(versions) == 1  # with the version of the QC1 rows
    got = [(r.kind, r.parameter, r.detector, r.value, r.relation, r.limit, r.low, r.high) for r in stored]
    assert [g[:3] + g[4:] for g in got] == [e[:3] + e[4:] for e in expected]
    assert [g[3] for g in got] == pytest.approx([e[3] for e in expected], rel=1e-6)
    assert [(f.kind, f.parameter, f.detector) for f in raised[ALERT]] == [e[:3] for e in expected[:2]]
    assert [(f.kind, f.parameter, f.detector) for f in raised[WARNING]] == [e[:3] for e in expected[2:]]


def test_the_pages_show_the_stored_findings_and_compute_none(tmp_path: Path, sqlite_url: str) -> None:
    """A passing set with a reason and a warning that exist only in the database: the pages and the API show them
    (cells marked); the stored findings of a failing version removed, the pages show none."""
    write_files(healthy_set(np.random.default_rng(5)), tmp_path)
    run_process(tmp_path, sqlite_url)
    settings = Settings(db_url=sqlite_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    engine = connect(sqlite_url)
    client = create_app(settings, engine, None).test_client()
    with engine.begin() as conn:
        set_id, version = conn.execute(select(crires_flat.c.set_id, crires_flat.c.version)).first()
        assert conn.execute(select(findings)).first() is None  # it passed: nothing to say
        conn.execute(insert(findings), [
            {"set_id": set_id, "version": version, "kind": FindingKind.CERTIFICATION, "parameter": "max_flux",
             "detector": 3, "value": 54321.0, "relation": ">", "limit": 10000.0, "low": None, "high": None},
            {"set_id": set_id, "version": version, "kind": FindingKind.TREND_LIMIT, "parameter": "rms_master",
             "detector": 2, "value": 0.5, "relation": ">", "limit": 0.13, "low": 0.08, "high": 0.13}])
    reason = "detector 3: max_flux = 54321.0 ADU > 10000 ADU"
    warning = "detector 2: rms_master = 0.5 > 0.13 (trend limits 0.08 .. 0.13)"
    page = client.get(f"/sets/{set_id}").get_data(as_text=True)
    assert f'{escape(reason)} — <a href="#flat5">flat5</a>' in page and escape(warning) in page
    night = client.get(f"/nights/{NIGHT}").get_data(as_text=True)
    assert f"<li>{escape(reason)}</li>" in night and f'<li class="warning">{escape(warning)}</li>' in night
    assert night.count('class="bad"') == 1 and night.count('class="warn"') == 1
    detail = client.get(f"/api/sets/{set_id}").get_json()
    assert detail["reasons"] == [reason] and detail["warnings"] == [warning]
    (about,) = detail["set"]["about"]
    assert about | {"text": None} == {"kind": "certification", "parameter": "max_flux", "detector": 3,
                                      "value": 54321.0, "relation": ">", "limit": 10000.0, "low": None,
                                      "high": None, "text": None, "picture": "flat5"}
    assert detail["set"]["flagged"] == ["max_flux/3"] and detail["set"]["warned"] == ["rms_master/2"]

    write_files(failing_set(np.random.default_rng(18)), tmp_path / "failing")  # the same raw names: a new version
    run_process(tmp_path / "failing", sqlite_url)
    with engine.begin() as conn:
        failing = conn.execute(select(crires_flat.c.version)).scalar()
        assert failing != version and conn.execute(select(findings).where(findings.c.version == failing)).first()
        conn.execute(findings.delete().where(findings.c.version == failing))
    detail = client.get(f"/api/sets/{set_id}").get_json()
    assert detail["set"]["verdict"] == "failed" and detail["reasons"] == [] and detail["warnings"] == []
    engine.dispose()
