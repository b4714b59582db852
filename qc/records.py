"""Typed records the QC produces: one :class:`DetectorQC` per detector, checks, verdict, and the set result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from qc.parameters import QC1_PARAMETERS

if TYPE_CHECKING:  # annotations only: the ledger and the commands read these records without numpy
    import numpy as np

QC1_NAMES: tuple[str, ...] = tuple(QC1_PARAMETERS)
"""QC1 column names of contract section 4 (fixed: the database columns carry these names); their units and meanings
are in :mod:`qc.parameters`."""


@dataclass(frozen=True)
class DetectorQC:
    """QC1 parameters of one detector of one set (contract 4). None stands for SQL NULL."""

    detector: int
    mean_level: float
    """Mean over raws of the median of finite pixels [ADU]."""
    mean_flux: float
    """mean_level / (NDIT * DIT) [ADU/s]."""
    rms_master: float
    """Population std of the finite master pixels (master is normalised, dimensionless)."""
    badpix: int
    """Finite pixels of master/median(master) outside [badpix_low, badpix_high]."""
    median_snr: float | None
    """Median over unvignetted pixels of mean/std(ddof=1) across raws; None when N < 3."""
    max_flux: float
    """Max over raws of the max of finite, BPM-good pixels [ADU]."""
    num_overexp: int
    """Max over raws of the number of finite, BPM-good pixels above overexp_level."""
    level_overexp: float | None
    """Median of those pixels in the frame with the most; None when num_overexp == 0 [ADU]."""
    bpm_count: int
    """Non-zero BPM pixels."""
    ref_ratio_median: float | None
    ref_ratio_std: float | None
    bpm_new: int | None
    """Bad in BPM, good in reference BPM; None without reference."""
    bpm_fixed: int | None
    """Good in BPM, bad in reference BPM; None without reference."""
    vignetted_pixels: int
    """Pixels of the read-out area outside the unvignetted mask."""
    bpm_bits: Mapping[str, int] = field(default_factory=dict)
    """Per-bit BPM counts for bit-mask BPMs (CRIRES+: ``bpm_flat`` ...); empty for CRIRES."""

    def qc1(self) -> dict[str, float | int | None]:
        """The QC1 columns as a plain dict (database row / JSON)."""
        return {name: getattr(self, name) for name in QC1_NAMES} | dict(self.bpm_bits)


class FindingKind(StrEnum):
    """What a :class:`Finding` says; a score (contract 9) is one more kind."""

    CERTIFICATION = "certification"
    """A failed certification check (contract 5): the set fails."""
    TREND_LIMIT = "trend_limit"
    """A QC1 value outside its HealthCheck trend limits (contract 7): a warning."""
    NOT_ASSESSABLE = "not_assessable"
    """S/N not certified: too few raws (``value`` = N, ``limit`` = the minimum)."""
    NOT_CERTIFIED = "not_certified"
    """S/N not certified: the setting is HealthCheck-only."""


@dataclass(frozen=True)
class Finding:
    """A reason, warning or note about a set as data, stored as made and read as such (the sentence people read is
    :func:`qc.certify.sentence`)."""

    kind: FindingKind
    parameter: str
    """QC1 parameter (or ``n_raw``) it is about."""
    detector: int | None
    """None for a finding about the whole set."""
    value: float | None
    relation: str | None
    """How ``value`` compares with ``limit``, e.g. ``<=`` (None when there is no value)."""
    limit: float | None
    low: float | None = None
    high: float | None = None
    """The allowed range whose bound ``limit`` is (trend limits); None when the limit is one-sided."""


@dataclass(frozen=True)
class CheckResult:
    """One certification check of one detector (contract 5)."""

    name: str
    """QC1 parameter checked, e.g. ``median_snr``."""
    detector: int
    value: float | None
    limit: float
    passed: bool | None
    """None when the check cannot be assessed (e.g. S/N with N < 3)."""
    relation: str | None
    """How the value compares with the limit (``>``, ``<=`` ...); None when not assessable."""

    def finding(self) -> Finding:
        """This check as a certification finding (what a failure stores)."""
        return Finding(FindingKind.CERTIFICATION, self.name, self.detector, self.value, self.relation, self.limit)


@dataclass(frozen=True)
class Certification:
    """Verdict of a set: ``passed``, ``failed`` or ``not_assessable`` (contract 5)."""

    verdict: str
    checks: tuple[CheckResult, ...]
    reasons: tuple[Finding, ...]
    """Failed checks (empty when passed); notes such as "S/N not assessable (N < 3)" go to ``notes``."""
    notes: tuple[Finding, ...] = ()

    @property
    def certified(self) -> bool:
        """True unless the set failed (a set that cannot be assessed on S/N is not a failure)."""
        return self.verdict != "failed"


@dataclass(frozen=True)
class PrevComparison:
    """One detector against the last good set of its setting (contract 9). None stands for SQL NULL."""

    detector: int
    ratio_median: float | None
    ratio_std: float | None
    """Median and population std of the finite pixels of ``M / M_prev`` on the rows both masters read; None when
    there is no such pixel or the last good set's master could not be read."""
    deltas: Mapping[str, float | int | None]
    """Per QC1 parameter: value - the last good set's value, in the parameter's unit; None when either is NULL."""

    def columns(self) -> dict[str, float | int | None]:
        """The QC1-row columns: ``prev_ratio_median``, ``prev_ratio_std`` and ``delta_<parameter>``."""
        return {"prev_ratio_median": self.ratio_median, "prev_ratio_std": self.ratio_std,
                **{f"delta_{name}": value for name, value in self.deltas.items()}}


@dataclass(frozen=True)
class LastGoodResult:
    """A set compared with its last good set: which one (None: there is none), a note people read, per detector."""

    set_id: str | None
    night: str | None
    note: str
    """"last good set <id> (night <date>)", with why there are no ratios if so, or "no earlier good set of <key>"."""
    detectors: tuple[PrevComparison, ...] = ()
    """Empty when there is no last good set."""

    def of(self, detector: int) -> PrevComparison | None:
        return next((d for d in self.detectors if d.detector == detector), None)


@dataclass
class DetectorView:
    """Display-resolution images and curves of one detector for the plots (block-averaged, never decimated)."""

    detector: int
    block: int
    """Block size of the downsampling (1 = full resolution)."""
    starty: int
    """First row (1-based) of the read-out window on the full detector."""
    master: np.ndarray
    ratio: np.ndarray | None
    """master / reference master (window rows), None without reference."""
    bpm: np.ndarray
    """Bitwise OR of the BPM values of each display block (int32): no bad pixel and no bit disappears."""
    bpm_changes: np.ndarray | None
    """Per display block the OR of 1 (a pixel bad now, good in the reference BPM) and 2 (good now, bad in the
    reference: fixed); None without reference."""
    snr: np.ndarray | None
    """Block-mean S/N per pixel where the master is finite (NaN between CRIRES+ orders); None when N < 3."""
    snr_local: np.ndarray | None
    """Median S/N of the pixels the certified median counts (unvignetted, finite master) per ``snr_cell`` square
    cell of the window; NaN where less than a quarter of a cell counts; None when N < 3."""
    snr_cell: int
    """Side of a ``snr_local`` cell [px]."""
    unvignetted: np.ndarray
    """Boolean mask per display block: True where the whole block is unvignetted."""
    raw_cut: np.ndarray
    """Mean raw (averaged over raws) along the columns, median over the central rows [ADU], full resolution."""
    master_cut: np.ndarray
    ref_cut: np.ndarray | None
    """The same cut through the reference master (normalised), None without reference."""
    ratio_cut: np.ndarray | None
    """The same cut through master / reference master, None without reference."""
    raw_hist: tuple[np.ndarray, np.ndarray]
    """(counts, edges [ADU]) of the finite pixels of every raw that are good in the BPM."""
    prev_ratio: np.ndarray | None = None
    """master / master of the last good set on the window's rows (NaN where that master read no row), block
    means; None without a last good set or when its master could not be read."""


@dataclass
class SetResult:
    """Everything computed for one set: QC1 per detector, verdict, provenance and display material."""

    set_id: str
    night: str
    profile: str
    setting_key: str
    raw_type: str
    n_raw: int
    dit: float
    ndit: int
    window_ny: int
    window_starty: int
    mjd_obs: float | None
    reference: str | None
    """Reference master file name used, or None."""
    reference_note: str
    """"reference <file>" or "no reference for <key>"."""
    detectors: list[DetectorQC]
    certification: Certification
    warnings: tuple[Finding, ...] = ()
    """QC1 values outside their HealthCheck trend limits (contract 7)."""
    views: list[DetectorView] = field(default_factory=list)
    input_files: tuple[str, ...] = ()
    """Names of the master, the BPM and the raws, in that order (shown on the cover sheet)."""
    last_good: LastGoodResult = field(default_factory=lambda: LastGoodResult(None, None, "no earlier good set"))
    """The comparison with the last good set of the setting (contract 9)."""

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Everything said about the set, as stored: reasons, notes, then trend-limit warnings."""
        return (*self.certification.reasons, *self.certification.notes, *self.warnings)
