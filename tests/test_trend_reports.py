"""The HealthCheck report pages and PNGs the worker writes, from QC1 rows inserted by hand."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from flatqc.db import QC1_TABLES, connect
from qc.config import QCConfig
from worker.trends import update_trends

HALOGEN, EMITTER = "1090.400_25.000_Halogen", "2199.100_15.000_Emitter"


def qc1_row(set_id: str, key: str, detector: int, mjd: float) -> dict:
    return {"set_id": set_id, "night": "2010-05-12", "mjd_obs": mjd, "setting_key": key, "n_raw": 3,
            "raw_type": "FLAT", "detector": detector, "mean_flux": 500.0 + detector, "rms_master": 0.1,
            "badpix": 10 * detector, "certified": True, "verdict": "passed", "master_file": f"{set_id}.fits"}


def test_pages_and_pngs_per_report_and_setting(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    table = QC1_TABLES["crires_flat"]
    with engine.begin() as conn:
        conn.execute(insert(table), [qc1_row(f"s{i}{key[:4]}", key, det, 55329.0 + i)
                                     for key in (HALOGEN, EMITTER) for i in range(3) for det in (1, 2, 3, 4)])
    out = tmp_path / "trends"
    configs = {"crires": (table, QCConfig())}
    update_trends(engine, configs, out, "crires", EMITTER)
    written = update_trends(engine, configs, out, "crires", HALOGEN)

    assert sorted(p.name for p in written) == sorted([
        "FLATSTAB_1090.400_25.000_Halogen_mean_flux.png", "FLATSTAB_1090.400_25.000_Halogen_rms_master.png",
        "FLAT_IRHa_1090.400_25.000_Halogen.png", "BADPIX_1090.400_25.000_Halogen.png",
        "FLATSTAB.html", "FLAT_IRHa.html", "BADPIX.html"])
    assert not (out / "FLAT_IRHa_2199.100_15.000_Emitter.png").exists()  # Halogen settings only
    assert (out / "BADPIX_2199.100_15.000_Emitter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flatstab = (out / "FLATSTAB.html").read_text()
    assert "limits (200.0, 950.0)" in flatstab and "limits (0.08, 0.13)" in flatstab  # contract 7, 1090.4 nm
    assert "crires 2199.100_15.000_Emitter mean_flux" in flatstab and "no limits defined" in flatstab
    assert "Emitter" not in (out / "FLAT_IRHa.html").read_text()
    assert "FLATSTAB_1090.400_25.000_Halogen_mean_flux.png" in flatstab
    engine.dispose()
