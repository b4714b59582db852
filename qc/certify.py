"""Certification (contract 5): one small check per rule, and ``certify`` combining them into a verdict."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qc.config import QCConfig
from qc.records import Certification, CheckResult, DetectorQC


def check_snr(qc: DetectorQC, config: QCConfig) -> CheckResult:
    """S/N in the unvignetted area must be above ``snr_limit`` (seed: 250); fails at ``<=``.

    Not assessable (``passed=None``) when there is no median S/N (N < 3)."""
    limit = config.snr_limit
    if qc.median_snr is None:
        return CheckResult("median_snr", qc.detector, None, limit, None,
                           f"detector {qc.detector}: median_snr not assessable (N < {config.min_flats_for_snr})")
    passed = qc.median_snr > limit
    relation = ">" if passed else "<="
    return CheckResult("median_snr", qc.detector, qc.median_snr, limit, passed,
                       f"detector {qc.detector}: median_snr = {qc.median_snr:.1f} {relation} {limit:g}")


def check_max_flux(qc: DetectorQC, config: QCConfig) -> CheckResult:
    """Maximum flux must not exceed ``max_flux_limit`` ADU (seed: 10000); fails at ``>``."""
    limit = config.max_flux_limit
    passed = qc.max_flux <= limit
    relation = "<=" if passed else ">"
    return CheckResult("max_flux", qc.detector, qc.max_flux, limit, passed,
                       f"detector {qc.detector}: max_flux = {qc.max_flux:.1f} ADU {relation} {limit:g} ADU")


def certify(detectors: Sequence[DetectorQC], n_raw: int, setting_key: str, config: QCConfig) -> Certification:
    """``failed`` if any check fails; else ``not_assessable`` if S/N could not be checked (N < 3); else ``passed``.

    Settings in ``healthcheck_only_settings`` are not used for science: their S/N is not certified."""
    science = setting_key not in config.healthcheck_only_settings
    checks: list[CheckResult] = []
    for qc in detectors:
        if science:
            checks.append(check_snr(qc, config))
        checks.append(check_max_flux(qc, config))
    reasons = tuple(c.message for c in checks if c.passed is False)
    notes: list[str] = []
    if not science:
        notes.append(f"S/N not certified: {setting_key} is HealthCheck-only")
    elif n_raw < config.min_flats_for_snr:
        notes.append(f"S/N not assessable (N = {n_raw} < {config.min_flats_for_snr})")
    if reasons:
        verdict = "failed"
    elif any(c.passed is None for c in checks):
        verdict = "not_assessable"
    else:
        verdict = "passed"
    return Certification(verdict=verdict, checks=tuple(checks), reasons=reasons, notes=tuple(notes))


TREND_UNITS = {"mean_flux": " ADU/s", "rms_master": ""}
"""Units of the QC1 parameters that have HealthCheck trend limits (contract 7)."""


class TrendValues(Protocol):
    """What :func:`trend_warnings` reads of a detector: a :class:`DetectorQC`, or a QC1 row."""

    @property
    def detector(self) -> int: ...
    @property
    def mean_flux(self) -> float | None: ...
    @property
    def rms_master(self) -> float | None: ...


def trend_warnings(config: QCConfig, setting_key: str, detectors: Sequence[TrendValues]) -> tuple[str, ...]:
    """HealthCheck trend-limit violations of a set (contract 7): a *warning*, below a failed certification. One
    line per detector and parameter, with value and limits; empty without limits for ``setting_key``."""
    limits = config.trend_limits.get(setting_key)
    if limits is None:
        return ()
    warnings = []
    for qc in detectors:
        for name, unit in TREND_UNITS.items():
            value, (low, high) = getattr(qc, name), getattr(limits, name)
            if value is None or low <= value <= high:
                continue
            relation, limit = ("<", low) if value < low else (">", high)
            warnings.append(f"detector {qc.detector}: {name} = {value:.4g}{unit} {relation} {limit:g}{unit} "
                            f"(trend limits {low:g} .. {high:g})")
    return tuple(warnings)
