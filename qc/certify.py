"""Certification (contract 5): one small check per rule, and ``certify`` combining them into a verdict; the
HealthCheck trend-limit warnings (contract 7); and :func:`sentence`, the one place a finding is worded."""

from __future__ import annotations

from collections.abc import Sequence

from qc.config import QCConfig
from qc.parameters import UNITS
from qc.records import Certification, CheckResult, DetectorQC, Finding, FindingKind


def check_snr(qc: DetectorQC, config: QCConfig) -> CheckResult:
    """S/N in the unvignetted area must be above ``snr_limit`` (seed: 250); fails at ``<=``.

    Not assessable (``passed=None``) when there is no median S/N (N < 3)."""
    limit = config.snr_limit
    if qc.median_snr is None:
        return CheckResult("median_snr", qc.detector, None, limit, None, None)
    passed = qc.median_snr > limit
    return CheckResult("median_snr", qc.detector, qc.median_snr, limit, passed, ">" if passed else "<=")


def check_max_flux(qc: DetectorQC, config: QCConfig) -> CheckResult:
    """Maximum flux must not exceed ``max_flux_limit`` ADU (seed: 10000); fails at ``>``."""
    limit = config.max_flux_limit
    passed = qc.max_flux <= limit
    return CheckResult("max_flux", qc.detector, qc.max_flux, limit, passed, "<=" if passed else ">")


def certify(detectors: Sequence[DetectorQC], n_raw: int, setting_key: str, config: QCConfig) -> Certification:
    """``failed`` if any check fails; else ``not_assessable`` if S/N could not be checked (N < 3); else ``passed``.

    Settings in ``healthcheck_only_settings`` are not used for science: their S/N is not certified."""
    science = setting_key not in config.healthcheck_only_settings
    checks: list[CheckResult] = []
    for qc in detectors:
        if science:
            checks.append(check_snr(qc, config))
        checks.append(check_max_flux(qc, config))
    reasons = tuple(c.finding() for c in checks if c.passed is False)
    notes: list[Finding] = []
    if not science:
        notes.append(Finding(FindingKind.NOT_CERTIFIED, "median_snr", None, None, None, None))
    elif n_raw < config.min_flats_for_snr:
        notes.append(Finding(FindingKind.NOT_ASSESSABLE, "n_raw", None, float(n_raw), "<",
                             config.min_flats_for_snr))
    if reasons:
        verdict = "failed"
    elif any(c.passed is None for c in checks):
        verdict = "not_assessable"
    else:
        verdict = "passed"
    return Certification(verdict=verdict, checks=tuple(checks), reasons=reasons, notes=tuple(notes))


TREND_PARAMETERS = ("mean_flux", "rms_master")
"""The QC1 parameters that have HealthCheck trend limits (contract 7)."""


def trend_warnings(config: QCConfig, setting_key: str, detectors: Sequence[DetectorQC]) -> tuple[Finding, ...]:
    """HealthCheck trend-limit violations of a set (contract 7): a *warning*, below a failed certification. One
    per detector and parameter, with value, the limit passed and the range; empty without limits for
    ``setting_key``."""
    limits = config.trend_limits.get(setting_key)
    if limits is None:
        return ()
    warnings = []
    for qc in detectors:
        for name in TREND_PARAMETERS:
            value, (low, high) = getattr(qc, name), getattr(limits, name)
            if value is None or low <= value <= high:
                continue
            relation, limit = ("<", low) if value < low else (">", high)
            warnings.append(Finding(FindingKind.TREND_LIMIT, name, qc.detector, value, relation, limit, low, high))
    return tuple(warnings)


def sentence(finding: Finding) -> str:
    """The finding as people read it (pages, notifications, cover sheet, terminal): detector, parameter, value and
    limit, e.g. ``detector 2: median_snr = 212.3 <= 250``."""
    if finding.kind == FindingKind.NOT_CERTIFIED:
        return "S/N not certified: the setting is HealthCheck-only"
    if finding.kind == FindingKind.NOT_ASSESSABLE:
        return (f"S/N not assessable (N = {_number(finding.value, 'g')} {finding.relation} "
                f"{_number(finding.limit, 'g')})")
    unit = f" {UNITS[finding.parameter]}" if UNITS.get(finding.parameter) else ""
    digits = ".4g" if finding.kind == FindingKind.TREND_LIMIT else ".1f"
    text = (f"detector {finding.detector}: {finding.parameter} = {_number(finding.value, digits)}{unit} "
            f"{finding.relation} {_number(finding.limit, 'g')}{unit}")
    if finding.low is not None and finding.high is not None:
        text += f" (trend limits {finding.low:g} .. {finding.high:g})"
    return text


def _number(value: float | None, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)
