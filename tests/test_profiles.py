"""The instrument profile owns what differs between instruments: its QC1 table and columns, its settings, its
window default. Checked against the names design.md fixes, written out here by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from flatqc.db import QC1_TABLES
from flatqc.settings import Settings
from qc.fitsio import classify
from qc.profiles import CRIRES, CRIRES_PLUS, PROFILES, profile_for_table
from qc.synth_fits import primary_header
from tests.tiny_set import raw_cards

RAW = "CRIRE.2010-05-12T10:00:00.000.fits"


def test_each_profile_builds_its_qc1_table() -> None:
    assert sorted(QC1_TABLES) == ["crires_flat", "criresp_flat"]
    crires, plus = (set(QC1_TABLES[name].columns.keys()) for name in ("crires_flat", "criresp_flat"))
    assert {"cwlen", "baffle_pos", "lamp"} <= crires and not {"wlen_id", "decker", "bpm_dark"} & crires
    assert {"wlen_id", "decker", "bpm_dark", "bpm_flat", "bpm_detlin", "bpm_outoforder", "bpm_edge"} <= plus
    assert not {"cwlen", "baffle_pos", "lamp"} & plus
    assert str(QC1_TABLES["crires_flat"].c.cwlen.type) == "FLOAT"
    assert str(QC1_TABLES["criresp_flat"].c.decker.type) == "VARCHAR(32)"
    assert profile_for_table("criresp_flat") is CRIRES_PLUS
    with pytest.raises(ValueError, match="crires_flat"):
        profile_for_table("uves_flat")


def test_setting_columns_come_from_the_first_raw() -> None:
    values = {"ESO INS WLEN CWLEN": "2199.1", "ESO INS BAFFLE POS": "15.0", "ESO INS LAMP1 NAME": "Halogen"}
    assert CRIRES.setting_row(values) == {"cwlen": 2199.1, "baffle_pos": 15.0, "lamp": "Halogen"}
    assert CRIRES_PLUS.setting_row({"ESO INS WLEN ID": "K2166", "ESO INS OPTI8 ID": "w_0.2"}) == {
        "wlen_id": "K2166", "decker": "w_0.2"}


def test_every_profile_has_its_settings_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLATQC_CRIRES_PLUS__SNR_LIMIT", "123")
    settings = Settings()
    for profile in PROFILES.values():
        assert profile.settings_name in Settings.model_fields
    assert settings.qc_config("crires+").snr_limit == 123.0
    assert settings.qc_config("crires").snr_limit == 250.0


def test_the_window_default_applies_to_its_own_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FLATQC_CRIRES__DEFAULT_WINDOW_STARTY`` sets where a CRIRES window without STARTY starts; another profile's
    setting does not."""
    cards = raw_cards(RAW, 0)
    cards["ESO DET WINDOW NY"] = 256
    del cards["ESO DET WINDOW STARTY"]
    monkeypatch.setenv("FLATQC_CRIRES__DEFAULT_WINDOW_STARTY", "129")
    assert classify(Path(RAW), primary_header(cards), Settings().window_starty_defaults()).window_starty == 129
    monkeypatch.delenv("FLATQC_CRIRES__DEFAULT_WINDOW_STARTY")
    monkeypatch.setenv("FLATQC_CRIRES_PLUS__DEFAULT_WINDOW_STARTY", "129")
    assert classify(Path(RAW), primary_header(cards), Settings().window_starty_defaults()).window_starty == 1
