"""Certification edge cases (contract 5), trend-limit warnings (contract 7), and the sentences of findings."""

from __future__ import annotations

from dataclasses import replace

from qc.certify import certify, sentence, trend_warnings
from qc.config import QCConfig
from qc.records import DetectorQC, Finding, FindingKind

BASE = DetectorQC(
    detector=1, mean_level=5000.0, mean_flux=500.0, rms_master=0.09, badpix=3, median_snr=400.0,
    max_flux=8000.0, num_overexp=0, level_overexp=None, bpm_count=3, ref_ratio_median=None,
    ref_ratio_std=None, bpm_new=None, bpm_fixed=None, vignetted_pixels=0,
)
KEY = "1090.400_25.000_Halogen"


def test_snr_exactly_at_limit_fails_with_named_reason() -> None:
    cert = certify([replace(BASE, detector=2, median_snr=250.0)], 3, KEY, QCConfig())
    assert cert.verdict == "failed" and not cert.certified
    assert cert.reasons == (Finding(FindingKind.CERTIFICATION, "median_snr", 2, 250.0, "<=", 250.0),)
    assert [sentence(r) for r in cert.reasons] == ["detector 2: median_snr = 250.0 <= 250"]


def test_snr_just_above_limit_passes() -> None:
    assert certify([replace(BASE, median_snr=250.01)], 3, KEY, QCConfig()).verdict == "passed"


def test_max_flux_exactly_at_limit_passes_and_above_fails() -> None:
    assert certify([replace(BASE, max_flux=10000.0)], 3, KEY, QCConfig()).verdict == "passed"
    cert = certify([replace(BASE, detector=4, max_flux=10000.5)], 3, KEY, QCConfig())
    assert cert.verdict == "failed"
    assert cert.reasons == (Finding(FindingKind.CERTIFICATION, "max_flux", 4, 10000.5, ">", 10000.0),)
    assert [sentence(r) for r in cert.reasons] == ["detector 4: max_flux = 10000.5 ADU > 10000 ADU"]


def test_two_flats_are_not_assessable_not_failed() -> None:
    cert = certify([replace(BASE, median_snr=None)], 2, KEY, QCConfig())
    assert cert.verdict == "not_assessable" and cert.certified
    assert cert.reasons == ()
    assert [sentence(n) for n in cert.notes] == ["S/N not assessable (N = 2 < 3)"]


def test_two_flats_overexposed_still_fail() -> None:
    cert = certify([replace(BASE, median_snr=None, max_flux=12000.0)], 2, KEY, QCConfig())
    assert cert.verdict == "failed" and len(cert.reasons) == 1


def test_healthcheck_only_setting_skips_snr() -> None:
    config = QCConfig(healthcheck_only_settings=(KEY,))
    cert = certify([replace(BASE, median_snr=100.0)], 3, KEY, config)
    assert cert.verdict == "passed"
    assert cert.notes == (Finding(FindingKind.NOT_CERTIFIED, "median_snr", None, None, None, None),)
    assert [sentence(n) for n in cert.notes] == ["S/N not certified: the setting is HealthCheck-only"]


def test_every_failing_detector_is_reported() -> None:
    dets = [replace(BASE, detector=d, median_snr=100.0 + d) for d in (1, 2, 3, 4)]
    cert = certify(dets, 3, KEY, QCConfig(snr_limit=102.5))
    assert [c.detector for c in cert.checks if c.passed is False] == [1, 2]


def test_trend_warnings_name_the_limit_passed_and_the_range() -> None:
    low = replace(BASE, detector=3, mean_flux=150.0)  # 1090.4 nm: mean_flux 200 .. 950, rms_master 0.08 .. 0.13
    high = replace(BASE, detector=1, rms_master=0.131)
    warnings = trend_warnings(QCConfig(), KEY, [BASE, low, high])
    assert warnings == (Finding(FindingKind.TREND_LIMIT, "mean_flux", 3, 150.0, "<", 200.0, 200.0, 950.0),
                        Finding(FindingKind.TREND_LIMIT, "rms_master", 1, 0.131, ">", 0.13, 0.08, 0.13))
    assert [sentence(w) for w in warnings] == [
        "detector 3: mean_flux = 150 ADU/s < 200 ADU/s (trend limits 200 .. 950)",
        "detector 1: rms_master = 0.131 > 0.13 (trend limits 0.08 .. 0.13)"]
    assert trend_warnings(QCConfig(), "2199.100_15.000_Halogen", [low, high]) == ()  # no limits for that key
