"""Names, units and meanings of every column of the QC1 tables: the one source the documentation page, the cover
sheet, the sentences of findings, the README's QC1 table and exports take them from.

A :class:`Column`'s ``algorithm`` is a template over the limits of a :class:`~qc.config.QCConfig` and the keywords of
an :class:`~qc.profiles.InstrumentProfile` (:func:`algorithm`), so a page shows the limits in force.
``tests/test_docs_page.py`` checks that the columns of :func:`table_columns` are those of the database tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from qc.config import QCConfig
from qc.profiles import PROFILES, InstrumentProfile

NO_UNIT = "—"
"""How a page shows the unit of a pure number, a text or a flag."""


@dataclass(frozen=True)
class Column:
    """One column of a QC1 table."""

    name: str
    unit: str
    """Unit of the values ("" for a pure number, a text or a flag): ADU, ADU/s, px, s, d, nm."""
    description: str
    """What it is, in one line (no limit values: those are settings)."""
    algorithm: str
    """How it is obtained: a ``str.format`` template over :func:`template_values`."""
    contract: str
    """Section of the data contract (``data-contract.md``) that defines it, or ``design`` (design.md)."""
    group: str
    """``key``, ``qc1`` (contract 4 parameter), ``bpm bit`` (CRIRES+), ``result``, ``last good``, ``score``,
    ``review`` (contract 9) or ``provenance``."""
    in_order: str = ""
    """What changes when statistics are taken over in-order pixels only (``QCConfig.in_order_only``, CRIRES+)."""

    @property
    def unit_label(self) -> str:
        """The unit as a page shows it: ``NO_UNIT`` for none."""
        return self.unit or NO_UNIT


def _key(name: str, unit: str, description: str, algorithm: str, contract: str) -> Column:
    return Column(name, unit, description, algorithm, contract, "key")


def _qc1(name: str, unit: str, description: str, algorithm: str, in_order: str = "") -> Column:
    return Column(name, unit, description, algorithm, "4", "qc1", in_order)


def _provenance(name: str, unit: str, description: str, algorithm: str) -> Column:
    return Column(name, unit, description, algorithm, "4", "provenance")


IN_ORDER_RAWS = "only raw pixels where the master is finite (in-order pixels) count"
QC1_PARAMETERS: Mapping[str, Column] = {c.name: c for c in (
    _qc1("mean_level", "ADU", "mean over the raws of the median of each raw's finite pixels",
         "mean over i of median(finite pixels of raw_i) (seed: \"average of the median values of the input frames\")",
         IN_ORDER_RAWS),
    _qc1("mean_flux", "ADU/s", "mean_level / (NDIT * DIT)",
         "mean_level / (NDIT * DIT) (seed)"),
    _qc1("rms_master", "", "population std of the finite pixels of the (normalised) master",
         "population std (ddof = 0) of the finite pixels of the master M (seed: \"standard deviation of the master "
         "product\")", "NaN master pixels (between the orders) are left out"),
    _qc1("badpix", "px", "finite pixels of master / median(master) outside [badpix_low, badpix_high]",
         "number of finite pixels of M / median(finite M) outside [{badpix_low:g}, {badpix_high:g}] (seed)",
         "NaN master pixels (between the orders) are left out"),
    _qc1("median_snr", "",
         "N >= min_flats_for_snr only: median over unvignetted pixels of mean / std(ddof=1) across raws",
         "only when N >= {min_flats_for_snr}, else NULL: per pixel S/N = mean_i(raw_i) / std_i(raw_i, ddof = 1) "
         "(pixels whose std is 0 or not finite excluded; bad pixels not excluded); median of S/N over the "
         "unvignetted pixels ({vignetted_area} is vignetted) (seed: \"median S/N as local QC parameter\")",
         "only in-order pixels (master finite) count"),
    _qc1("max_flux", "ADU", "max over raws of the max of finite pixels good in the BPM",
         "max over i of the maximum of the finite pixels of raw_i with BPM == 0 (bad pixels excluded so that a "
         "single hot pixel does not fail a set)", IN_ORDER_RAWS),
    _qc1("num_overexp", "px", "most pixels above overexp_level (good, finite) in one raw",
         "max over i of the number of finite pixels of raw_i with BPM == 0 and value > {overexp_level:g} ADU "
         "(seed 1.1.4)", IN_ORDER_RAWS),
    _qc1("level_overexp", "ADU", "median of those pixels (NULL when there are none)",
         "median of the pixels counted by num_overexp in the raw that had the most (the first on a tie); NULL when "
         "num_overexp = 0 (seed 1.1.4)", IN_ORDER_RAWS),
    _qc1("bpm_count", "px", "non-zero BPM pixels", "number of non-zero pixels of the BPM (all pixels)"),
    _qc1("ref_ratio_median", "", "median of master / reference (NULL without reference)",
         "median of the finite pixels of M / M_ref (window rows of the reference); NULL without reference"),
    _qc1("ref_ratio_std", "", "std of master / reference (NULL without reference)",
         "population std of the finite pixels of M / M_ref; NULL without reference"),
    _qc1("bpm_new", "px", "bad now but good in the reference BPM (NULL without reference)",
         "pixels with BPM != 0 and reference BPM == 0; NULL without reference"),
    _qc1("bpm_fixed", "px", "good now but bad in the reference BPM (NULL without reference)",
         "pixels with BPM == 0 and reference BPM != 0; NULL without reference"),
)}
"""The QC1 parameters of contract section 4, in table order (``qc.records.QC1_NAMES`` is their names)."""

SETTING_COLUMNS: Mapping[str, tuple[str, str]] = {
    "cwlen": ("nm", "reference wavelength"),
    "baffle_pos": ("", "baffle position"),
    "lamp": ("", "lamp name (Halogen or Emitter)"),
    "wlen_id": ("", "wavelength setting"),
    "decker": ("", "decker"),
}
"""(unit, description) of each setting column of the profiles (``InstrumentProfile.setting_columns``)."""

KEYS_BEFORE_SETTING: tuple[Column, ...] = (
    _key("set_id", "", "the set, named by its raws", "first 16 hex digits of sha256 over the sorted raw names", "2"),
    _key("version", "", "the set version the row was computed from",
         "sha256 over the sorted content hashes of its members", "design"),
    _key("night", "", "night of the set (DATE, YYYY-MM-DD)", "the night folder the products arrived in", "1"),
    _key("mjd_obs", "d", "start of the first raw's exposure", "MJD-OBS of the first raw", "4"),
    _key("setting_key", "", "instrument setting of the set", "{setting_key_rule}", "3"),
)
KEYS_AFTER_SETTING: tuple[Column, ...] = (
    _key("dit", "s", "detector integration time", "{dit_key} of the raws (all agree)", "3"),
    _key("ndit", "", "number of sub-integrations", "{ndit_key} of the raws (all agree)", "3"),
    _key("n_raw", "", "number of raw flats N of the set", "raws listed as PRO REC1 RAWi NAME by master and BPM", "2"),
    _key("ny", "px", "rows read out", "{ny_rule}", "3"),
    _key("window_starty", "px", "first row (1-based) of the read-out window on the full detector",
         "{starty_rule}", "3"),
    _key("raw_type", "", "FLAT (full frame) or FLT_WIN (windowed read-out)", "FLT_WIN when ny < {full_ny}", "3"),
    _key("detector", "", "detector (chip) number", "extension {chip_extname} (n = 1..{n_detectors})", "3"),
)
VIGNETTED = Column("vignetted_pixels", "px", "read-out pixels outside the unvignetted area",
                   "pixels of the read-out rows in the vignetted area: {vignetted_area}", "4", "result")
RESULTS: tuple[Column, ...] = (
    Column("certified", "", "false when the set failed certification", "verdict != failed", "5", "result"),
    Column("verdict", "", "passed, failed or not_assessable (S/N not checked: N too small)",
           "see Certification", "5", "result"),
)
PROVENANCE: tuple[Column, ...] = (
    _provenance("master_file", "", "master flat product (file name)", "PRO CATG = {master_catg}"),
    _provenance("master_sha256", "", "content hash of the master", "sha256 of the file"),
    _provenance("bpm_file", "", "bad-pixel-map product (file name)", "PRO CATG = {bpm_catg}"),
    _provenance("bpm_sha256", "", "content hash of the BPM", "sha256 of the file"),
    _provenance("raw_files", "", "raw flats (file names, a list)", "DPR CATG, TYPE, TECH = {raw_dpr}"),
    _provenance("raw_sha256", "", "content hashes of the raws (a list)", "sha256 of each file"),
    _provenance("reference", "", "reference master used, or NULL",
                "{reference_prefix}_FLAT_<setting_key>.fits in QC_REFERENCE"),
    _provenance("thresholds_version", "", "version tag of the limits in force", "QCConfig.thresholds_version"),
    _provenance("software_version", "", "flatqc version that computed the row", "the package version"),
    _provenance("processed_at", "", "when the row was written (UTC)", "time of the transaction"),
)


def bpm_bit_column(name: str, bit: int) -> Column:
    """The QC1 column counting the BPM pixels with one named bit set (CRIRES+ bit-mask BPMs, contract 8)."""
    return Column(f"bpm_{name}", "px", f"BPM pixels flagged {name} (bit value {bit})",
                  f"number of pixels of the BPM with (BPM & {bit}) != 0 (all pixels)", "8", "bpm bit")


def last_good_columns(parameters: Iterable[Column]) -> tuple[Column, ...]:
    """The comparison with the last good set of the setting (contract 9): which set it is, why there are no ratios,
    the ratio of the two masters, and the change of each of ``parameters`` (in that parameter's unit)."""
    return (
        Column("prev_set_id", "", "the last good set of the setting (empty: none)",
               "the most recent earlier set (by MJD-OBS) of the same profile and setting key that did not fail "
               "certification and was not rejected in review", "9", "last good"),
        Column("prev_note", "", "why there are no ratios (no earlier good set, its master gone or changed)",
               "empty when the ratios were computed", "9", "last good"),
        Column("prev_ratio_median", "", "median of master / the last good set's master",
               "median of the finite pixels of M / M_prev over the rows both masters read (by STARTY)", "9",
               "last good"),
        Column("prev_ratio_std", "", "standard deviation of master / the last good set's master",
               "std (ddof = 0) of the finite pixels of M / M_prev over the rows both masters read", "9", "last good"),
        *(Column(f"delta_{c.name}", c.unit, f"change of {c.name} since the last good set",
                 f"{c.name} minus {c.name} of the last good set", "9", "last good") for c in parameters),
    )


def score_columns(parameters: Iterable[Column]) -> tuple[Column, ...]:
    """The scores of a row against the thresholds in force (contract 9), one per parameter, their worst, and the
    threshold file used."""
    return (
        *(Column(f"score_{c.name}", "", f"score of {c.name}: ok, warn, fail or empty (not scored)",
                 "worst of the fixed and the statistical threshold in force for the parameter", "9", "score")
          for c in parameters),
        Column("score", "", "the row's worst score (fail > warn > ok; empty: nothing scored)",
               "worst of the score_<parameter> columns", "9", "score"),
        Column("thresholds_file", "", "the threshold file the scores used, or built-in",
               "the newest file of FLATQC_THRESHOLDS_DIR whose valid_from <= the night", "9", "score"),
        Column("thresholds_sha256", "", "content hash of that file (empty: built-in)", "sha256 of the file", "9",
               "score"),
    )


REVIEW = Column("review", "", "the review decision in force on the set: accepted, rejected or empty (not reviewed)",
                "the newest decision (flatqc review, set or night page) not replaced by a later one", "9", "review")
"""Exported with every QC1 row (joined from the ``reviews`` table, not a column of the QC1 tables)."""


def table_columns(profile: InstrumentProfile) -> tuple[Column, ...]:
    """Every column of ``profile``'s QC1 table (but its surrogate key ``id``), in table order."""
    settings = tuple(_key(c.name, *SETTING_COLUMNS[c.name], f"{c.keyword} of the first raw (all raws agree)", "3")
                     for c in profile.setting_columns)
    bits = tuple(bpm_bit_column(name, bit) for name, bit in (profile.bpm_bits or {}).items())
    measured = (*QC1_PARAMETERS.values(), *bits)
    return (*KEYS_BEFORE_SETTING, *settings, *KEYS_AFTER_SETTING, *measured, VIGNETTED, *last_good_columns(measured),
            *RESULTS, *PROVENANCE, *score_columns(measured))


def units(profile: InstrumentProfile) -> dict[str, str]:
    """``{column: unit}`` of ``profile``'s QC1 table ("" for none), e.g. for the headers of an export."""
    return {c.name: c.unit for c in table_columns(profile)}


UNITS: Mapping[str, str] = {name: unit for profile in PROFILES.values() for name, unit in units(profile).items()}
"""Unit of every column of any QC1 table ("" for none); a name means the same in every table."""


def vignetted_area(profile: InstrumentProfile, config: QCConfig) -> str:
    """The vignetted area of ``profile`` under ``config`` in words (contract 4 and 8), ``none`` when there is none."""
    parts = []
    width, nx = config.vignetted_width, profile.nx
    if width:
        parts.append(f"columns 0..{width - 1} of detector 1 and {nx - width}..{nx - 1} of detector "
                     f"{profile.n_detectors}")
    if config.vignetted_bottom_rows:
        parts.append(f"the bottom {config.vignetted_bottom_rows} rows of the full frame")
    if config.edge_width:
        parts.append(f"a {config.edge_width}-pixel edge on every side")
    return " and ".join(parts) or "none"


def template_values(profile: InstrumentProfile, config: QCConfig) -> dict[str, object]:
    """What the ``algorithm`` templates may name: the scalar limits of ``config`` and words about ``profile``."""
    values: dict[str, object] = {f.name: getattr(config, f.name) for f in fields(config)}
    windowed = profile.window_ny_key is not None
    return values | {
        "vignetted_area": vignetted_area(profile, config),
        "setting_key_rule": (profile.setting_key.__doc__ or "").replace("``", "").strip(),
        "dit_key": profile.dit_key, "ndit_key": profile.ndit_key, "full_ny": profile.full_ny,
        "n_detectors": profile.n_detectors, "chip_extname": profile.chip_extname_pattern.format(n="n"),
        "ny_rule": f"{profile.window_ny_key} ({profile.full_ny} = full frame)" if windowed
        else f"{profile.full_ny}: no windowed read-out",
        "starty_rule": f"{profile.window_starty_key} (default {config.default_window_starty})" if windowed
        else "1: no windowed read-out",
        "master_catg": profile.master_catg, "bpm_catg": profile.bpm_catg, "raw_dpr": ", ".join(profile.raw_dpr),
        "reference_prefix": profile.reference_prefix,
    }


def algorithm(column: Column, profile: InstrumentProfile, config: QCConfig) -> str:
    """How ``column`` is obtained for ``profile`` with the limits of ``config``."""
    text = column.algorithm.format(**template_values(profile, config))
    if column.in_order and config.in_order_only:
        text += f"; {profile.title}: {column.in_order}"
    return text


def readme_table() -> str:
    """The README's QC1 table (Markdown): name, unit and description of each QC1 parameter."""
    lines = ["| QC1 name | unit | definition |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {c.unit_label} | {c.description} |" for c in QC1_PARAMETERS.values()]
    return "\n".join(lines)
