"""``make demo``'s history and thresholds (flatqc/demo.py): the thresholds folder is contract 9's format, the demo's
settings name it, and the history is processed into the demo's database before tonight."""

from __future__ import annotations

import datetime
import json
import tomllib
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import func, select

from flatqc.db import connect, crires_flat, sets
from flatqc.demo import THRESHOLDS_FILE, prepare_history, write_config, write_thresholds
from flatqc.settings import Settings
from flatqc.threshold_files import thresholds_of
from qc.synth_history import HISTORY_MANIFEST

REQUIRED = {"fixed": {"parameter", "kind"}, "statistical": {"parameter", "kind"}}
ALLOWED = {"parameter", "kind", "profile", "setting", "detector", "low", "high", "severity", "window_days",
           "min_points", "k_warn", "k_fail"}


def test_the_thresholds_folder_parses_as_contract_9_toml(tmp_path: Path) -> None:
    settings = Settings(thresholds_dir=tmp_path / "thresholds")
    write_thresholds(settings, tmp_path / "thresholds")
    in_force = thresholds_of(settings).for_night("2010-05-12")  # the service's own reading of the folder
    assert in_force.name == THRESHOLDS_FILE and in_force.valid_from == datetime.date(2006, 1, 1)
    files = sorted((tmp_path / "thresholds").glob("*.toml"))
    assert len(files) == 1
    data = tomllib.loads(files[0].read_text(encoding="utf-8"))
    assert data["valid_from"] == datetime.date(2006, 1, 1)
    thresholds = data["threshold"]
    for threshold in thresholds:
        assert REQUIRED[threshold["kind"]] <= threshold.keys() <= ALLOWED, threshold
        assert threshold.get("severity", "fail") in ("fail", "warn")
        if threshold["kind"] == "fixed":
            assert "low" in threshold or "high" in threshold
        else:
            assert not {"low", "high", "severity"} & threshold.keys()

    def find(**wanted: object) -> list[dict]:
        return [t for t in thresholds if all(t.get(k) == v for k, v in wanted.items())]

    assert find(parameter="median_snr", kind="fixed", profile="crires", low=250.0, severity="fail")
    assert find(parameter="max_flux", kind="fixed", profile="crires", high=10000.0, severity="fail")
    assert find(parameter="max_flux", kind="fixed", profile="crires+", high=37000.0, severity="fail")
    assert find(parameter="mean_flux", kind="fixed", setting="1090.400_25.000_Halogen", low=200.0, high=950.0,
                severity="warn")
    for parameter in ("mean_flux", "rms_master", "median_snr"):
        (statistical,) = find(parameter=parameter, kind="statistical")
        assert statistical["window_days"] == 90 and statistical["k_warn"] < statistical["k_fail"]
        assert "profile" not in statistical and "setting" not in statistical


def test_the_demo_config_names_the_thresholds_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(qc_output=tmp_path / "qc", thresholds_dir=tmp_path / "thresholds")
    config = write_config(settings, tmp_path / "flatqc.toml")
    assert tomllib.loads(config.read_text())["thresholds_dir"] == str((tmp_path / "thresholds").resolve())
    assert "thresholds_dir" not in tomllib.loads(write_config(Settings(), tmp_path / "none.toml").read_text())
    monkeypatch.setenv("FLATQC_CONFIG", str(config))
    assert Settings().thresholds_dir == (tmp_path / "thresholds").resolve()


@pytest.mark.slow
def test_the_history_is_processed_before_tonight(tmp_path: Path) -> None:
    tree, staging = tmp_path / "tree", tmp_path / "staging"
    settings = Settings(dfs_product=tree / "dfs_product", dfs_raw=tree / "dfs_raw", qc_reference=tree / "reference",
                        qc_output=tree / "qc", db_url=f"sqlite:///{tmp_path / 'flatqc.db'}")
    console = Console(file=open(tmp_path / "out.txt", "w"), width=200)  # noqa: SIM115 - closed below
    try:
        tonight = prepare_history(console, settings, tmp_path, staging, "2010-05-12", 2, seed=1)
    finally:
        console.file.close()
    engine = connect(settings.db_url)
    try:
        with engine.connect() as conn:
            nights = dict(conn.execute(select(sets.c.night, func.count()).group_by(sets.c.night)).all())
            states = set(conn.execute(select(sets.c.state)).scalars())
            rows = conn.execute(select(func.count()).select_from(crires_flat)).scalar()
    finally:
        engine.dispose()
    assert set(nights) == {"2010-05-10", "2010-05-11"} and states == {"done"}  # tonight's are for the service
    assert rows == 4 * sum(nights.values())
    assert tonight and all((staging / entry.master).is_file() and not (tree / entry.master).exists()
                           for entry in tonight)
    assert not (tree / "dfs_product").exists() and (tree / "qc").is_dir()  # not in the watched tree: pictures only
    manifest = json.loads((tmp_path / HISTORY_MANIFEST).read_text())
    assert manifest["nights"] == ["2010-05-10", "2010-05-11", "2010-05-12"]
    assert all((tmp_path / "history" / entry["master"]).is_file() for entry in manifest["sets"]
               if entry["night"] != "2010-05-12")
    assert "history: " in (tmp_path / "out.txt").read_text()
