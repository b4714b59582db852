"""Instrument profiles: everything that differs between CRIRES and CRIRES+.

Keyword and extension names, geometry, product categories, BPM bits, default QC limits, the QC1 table with its
setting columns, and the settings field holding the limits. Nothing else hard-wires the number of detectors, their
shape, a keyword name or a table, and no other module compares with an instrument's name
(``tests/test_layers.py`` checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qc.config import CRIRES_PLUS_CONFIG, QCConfig


def _crires_setting_key(header: Mapping[str, Any]) -> str:
    """``f"{cwlen:.3f}_{baffle:.3f}_{lamp}"``, e.g. ``2199.100_15.000_Halogen`` (contract 3)."""
    cwlen = float(header["ESO INS WLEN CWLEN"])
    baffle = float(header["ESO INS BAFFLE POS"])
    lamp = str(header["ESO INS LAMP1 NAME"]).strip()
    return f"{cwlen:.3f}_{baffle:.3f}_{lamp}"


def _crires_plus_setting_key(header: Mapping[str, Any]) -> str:
    """``<INS WLEN ID>_<INS OPTI8 ID>``, e.g. ``K2166_w_0.2`` (contract 8)."""
    return f"{str(header['ESO INS WLEN ID']).strip()}_{str(header['ESO INS OPTI8 ID']).strip()}"


@dataclass(frozen=True)
class SettingColumn:
    """A column of the QC1 table holding one setting keyword of the set's first raw (contract 4 and 8)."""

    name: str
    keyword: str
    numeric: bool
    """A real number (SQL float) rather than a string (SQL varchar(32))."""

    def value(self, setting_values: Mapping[str, str]) -> float | str:
        """The column's value from the ``(keyword, value)`` pairs of a raw (``FrameInfo.setting_values``)."""
        text = setting_values[self.keyword]
        return float(text) if self.numeric else text


@dataclass(frozen=True)
class InstrumentProfile:
    """What differs between instruments; pass one around instead of constants."""

    name: str
    """Profile id used in settings and the database (``crires``, ``crires+``)."""
    table: str
    """QC1 table name (contract 4 and 8)."""
    settings_name: str
    """Name of the settings field (and ``FLATQC_<NAME>__*`` environment prefix) holding its QC limits."""
    setting_columns: tuple[SettingColumn, ...]
    """The setting keywords, each with its QC1 table column, in table order: all must be present on raws and agree
    within a set; numeric ones must be real numbers, the others non-empty strings."""
    reference_prefix: str
    """Reference files are ``<prefix>_FLAT_<key>.fits`` / ``<prefix>_BPM_<key>.fits`` (contract 6)."""
    n_detectors: int
    full_ny: int
    """Rows of a full frame (numpy axis 0)."""
    nx: int
    """Columns (numpy axis 1, dispersion)."""
    master_catg: str
    bpm_catg: str
    raw_dpr: tuple[str, str, str]
    """``(DPR CATG, DPR TYPE, DPR TECH)`` of a raw flat."""
    dit_key: str
    ndit_key: str
    setting_key: Callable[[Mapping[str, Any]], str]
    window_ny_key: str | None
    window_starty_key: str | None
    default_config: QCConfig
    chip_extname_pattern: str = "CHIP{n}.INT1"
    error_extname_pattern: str | None = None
    """Error extensions of the master (CRIRES+ only); not used by the QC1 definitions."""
    bpm_bits: Mapping[str, int] | None = None
    """Named bits of a bit-mask BPM (CRIRES+); None for a 0/1 BPM."""
    lamp_keyword: str | None = None
    master_dtype: str = "float32"
    """dtype masters are read into (CRIRES+ masters are float64)."""

    def chip_extname(self, detector: int) -> str:
        return self.chip_extname_pattern.format(n=detector)

    def error_extname(self, detector: int) -> str:
        """``EXTNAME`` of the master's error extension of ``detector``; ValueError if masters have none."""
        if self.error_extname_pattern is None:
            raise ValueError(f"{self.title} masters have no error extensions")
        return self.error_extname_pattern.format(n=detector)

    @property
    def bpm_allowed_mask(self) -> int:
        """Bits a BPM pixel may have set: the named bits of a bit-mask BPM, else 1 (a 0/1 BPM)."""
        mask = 0
        for value in (self.bpm_bits or {"bad": 1}).values():
            mask |= value
        return mask

    @property
    def setting_keywords(self) -> tuple[str, ...]:
        """Keywords the setting key is made of."""
        return tuple(column.keyword for column in self.setting_columns)

    @property
    def numeric_setting_keywords(self) -> tuple[str, ...]:
        """Setting keywords whose value must be a real number."""
        return tuple(column.keyword for column in self.setting_columns if column.numeric)

    @property
    def bpm_bit_columns(self) -> tuple[str, ...]:
        """QC1 columns counting the pixels with each named BPM bit (``bpm_<name>``); none for a 0/1 BPM."""
        return tuple(f"bpm_{name}" for name in self.bpm_bits or {})

    def setting_row(self, setting_values: Mapping[str, str]) -> dict[str, float | str]:
        """The setting columns of a QC1 row from the ``(keyword, value)`` pairs of the set's first raw."""
        return {column.name: column.value(setting_values) for column in self.setting_columns}

    @property
    def title(self) -> str:
        """The instrument's name for people: ``CRIRES``, ``CRIRES+``."""
        return self.name.upper()

    @property
    def detectors(self) -> range:
        """Detector numbers, 1-based."""
        return range(1, self.n_detectors + 1)

    def raw_type(self, window_ny: int) -> str:
        """``FLAT`` for a full frame, ``FLT_WIN`` for a windowed read-out (contract 3)."""
        return "FLAT" if window_ny >= self.full_ny else "FLT_WIN"


CRIRES = InstrumentProfile(
    name="crires",
    table="crires_flat",
    settings_name="crires",
    setting_columns=(
        SettingColumn("cwlen", "ESO INS WLEN CWLEN", numeric=True),
        SettingColumn("baffle_pos", "ESO INS BAFFLE POS", numeric=True),
        SettingColumn("lamp", "ESO INS LAMP1 NAME", numeric=False),
    ),
    reference_prefix="CRIRES",
    n_detectors=4,
    full_ny=512,
    nx=1024,
    master_catg="CALPRO_FLAT",
    bpm_catg="CALPRO_BPM",
    raw_dpr=("CALIB", "FLAT", "SPECTRUM"),
    dit_key="ESO DET DIT",
    ndit_key="ESO DET NDIT",
    setting_key=_crires_setting_key,
    window_ny_key="ESO DET WINDOW NY",
    window_starty_key="ESO DET WINDOW STARTY",
    default_config=QCConfig(),
    lamp_keyword="ESO INS LAMP1 NAME",
)

CRIRES_PLUS = InstrumentProfile(
    name="crires+",
    table="criresp_flat",
    settings_name="crires_plus",
    setting_columns=(
        SettingColumn("wlen_id", "ESO INS WLEN ID", numeric=False),
        SettingColumn("decker", "ESO INS OPTI8 ID", numeric=False),
    ),
    reference_prefix="CRIRESP",
    n_detectors=3,
    full_ny=2048,
    nx=2048,
    master_catg="CAL_FLAT_MASTER",
    bpm_catg="CAL_FLAT_BPM",
    raw_dpr=("CALIB", "FLAT", "SPECTRUM"),
    dit_key="ESO DET SEQ1 DIT",
    ndit_key="ESO DET NDIT",
    setting_key=_crires_plus_setting_key,
    window_ny_key=None,
    window_starty_key=None,
    default_config=CRIRES_PLUS_CONFIG,
    error_extname_pattern="CHIP{n}ERR.INT1",
    bpm_bits={"dark": 1, "flat": 2, "detlin": 4, "outoforder": 8, "edge": 16},
    master_dtype="float64",
)

PROFILES: dict[str, InstrumentProfile] = {p.name: p for p in (CRIRES, CRIRES_PLUS)}

RAW_DETECTION_ORDER: tuple[InstrumentProfile, ...] = (CRIRES_PLUS, CRIRES)
"""Raws are recognised by keywords; CRIRES+ first, as its headers may carry CRIRES keywords
(e.g. ``INS WLEN CWLEN``) while ``DET SEQ1 DIT`` and ``INS WLEN ID`` are CRIRES+ only."""


def profile_named(name: str) -> InstrumentProfile:
    """The profile called ``name`` (``crires`` or ``crires+``); ValueError names the choices."""
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown instrument profile {name!r}; choose one of {sorted(PROFILES)}") from None


def profile_for_table(table: str) -> InstrumentProfile:
    """The profile whose QC1 table is ``table``; ValueError names the choices."""
    for profile in PROFILES.values():
        if profile.table == table:
            return profile
    raise ValueError(f"unknown QC1 table {table!r}; choose one of {sorted(p.table for p in PROFILES.values())}")


def detect_profile(header: Mapping[str, Any]) -> InstrumentProfile | None:
    """The profile a primary header belongs to, from its product category or its keywords; None if foreign."""
    catg = str(header.get("ESO PRO CATG", "")).strip()
    for profile in PROFILES.values():
        if catg in (profile.master_catg, profile.bpm_catg):
            return profile
    if catg:
        return None
    for profile in RAW_DETECTION_ORDER:
        if profile.dit_key in header or any(k in header for k in profile.setting_keywords):
            return profile
    return None
