"""A second, deliberately plain implementation of contract section 9 (scores, dated threshold files), for tests only.

Written from the contract's words and sharing no code with ``qc.scores`` or ``qc.thresholds``: threshold files are
read with ``tomllib`` into plain dicts, medians come from ``statistics.median``, the history is filtered by explicit
loops over every row (all profiles, settings, detectors, verdicts, review states), and the built-in thresholds are
the contract's numbers (sections 5 and 7) typed in again. Where the contract is silent the choice is marked
[convention].
"""

from __future__ import annotations

import hashlib
import math
import statistics
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase
from typing import Any

KEY = "1090.400_25.000_Halogen"
"""A setting key with HealthCheck limits (contract 7)."""
MAD_TO_SIGMA = 1.4826
RANK = {None: 0, "ok": 1, "warn": 2, "fail": 3}
DEFAULTS = {"window_days": 90.0, "min_points": 5, "k_warn": 3.0, "k_fail": 5.0, "severity": "fail"}

SNR_LIMIT = 250.0
"""Contract 5.1: a set fails when median_snr <= this."""
MAX_FLUX_LIMIT = {"crires": 10000.0, "crires+": 37000.0}
"""Contract 5.2 and 8: a set fails when max_flux > this [ADU]."""
TREND_LIMITS = {
    "1090.400_25.000_Halogen": {"mean_flux": (200.0, 950.0), "rms_master": (0.08, 0.13)},
    "3218.600_25.000_Halogen": {"mean_flux": (75.0, 500.0), "rms_master": (0.08, 0.145)},
    "4092.900_25.000_Halogen": {"mean_flux": (100.0, 800.0), "rms_master": (0.05, 0.10)},
}
"""Contract 7, CRIRES only, every detector: allowed ranges, outside = ``warn`` (contract 9)."""
PARAMETERS = {
    "crires": ("mean_level", "mean_flux", "rms_master", "badpix", "median_snr", "max_flux", "num_overexp",
               "level_overexp", "bpm_count", "ref_ratio_median", "ref_ratio_std", "bpm_new", "bpm_fixed"),
}
PARAMETERS["crires+"] = (*PARAMETERS["crires"], "bpm_dark", "bpm_flat", "bpm_detlin", "bpm_outoforder", "bpm_edge")
"""The QC1 columns of each profile's rows (contract 4 and 8): what a threshold may score."""


def plain_worst(scores: Iterable[str | None]) -> str | None:
    """``fail`` > ``warn`` > ``ok`` > no score."""
    found = None
    for score in scores:
        if RANK[score] > RANK[found]:
            found = score
    return found


@dataclass(frozen=True)
class PlainRow:
    """One QC1 row (a set's detector) as scoring sees it; a parameter absent from ``values`` is NULL."""

    set_id: str
    mjd: float | None
    values: Mapping[str, float | None]
    detector: int = 1
    setting_key: str = KEY
    profile: str = "crires"
    night: str = "2010-05-12"
    verdict: str = "passed"
    rejected: bool = False
    """The review decision in force on its set is ``rejected``."""
    superseded: bool = False
    """Its set version was superseded by a newer one."""


@dataclass(frozen=True)
class PlainFile:
    name: str
    sha256: str
    valid_from: date
    thresholds: list[dict[str, Any]]


def read_file(name: str, text: str) -> PlainFile:
    document = tomllib.loads(text)
    return PlainFile(name, hashlib.sha256(text.encode()).hexdigest(), document["valid_from"],
                     list(document.get("threshold", [])))


def file_for_night(files: Sequence[PlainFile], night: str) -> PlainFile | None:
    """The newest file whose ``valid_from`` <= the night DATE; None: the built-in thresholds."""
    day = date.fromisoformat(night)
    eligible = sorted((f for f in files if f.valid_from <= day), key=lambda f: f.valid_from)
    return eligible[-1] if eligible else None


@dataclass(frozen=True)
class PlainScore:
    """One value against one threshold: fixed, its bounds; statistical, the warning band centre ∓ k_warn × spread
    [convention: what the service stores to draw], the centre, spread and number of earlier points."""

    parameter: str
    kind: str
    score: str | None
    low: float | None = None
    high: float | None = None
    centre: float | None = None
    spread: float | None = None
    n_points: int | None = None


def _fixed(value: float | None, low: float | None, high: float | None, severity: str) -> str | None:
    if value is None:
        return None
    if low is not None and value < low:
        return severity
    if high is not None and value > high:
        return severity
    return "ok"


def history_points(row: PlainRow, parameter: str, window_days: float, rows: Iterable[PlainRow]) -> list[float]:
    """The values the statistical threshold of ``row`` is made of: same profile, setting and detector, ``MJD-OBS``
    in ``[t - window_days, t)``, not failed, not rejected, not superseded, not the row itself (nor its set's other
    rows), value not NULL [convention]."""
    points = []
    for other in rows:
        if other.set_id == row.set_id or other.mjd is None or row.mjd is None:
            continue
        if (other.profile, other.setting_key, other.detector) != (row.profile, row.setting_key, row.detector):
            continue
        if other.verdict == "failed" or other.rejected or other.superseded:
            continue
        if not (row.mjd - window_days <= other.mjd < row.mjd):
            continue
        value = other.values.get(parameter)
        if value is not None:
            points.append(float(value))
    return points


def _statistical(row: PlainRow, parameter: str, threshold: Mapping[str, Any],
                 rows: Iterable[PlainRow]) -> PlainScore:
    settings = DEFAULTS | dict(threshold)
    points = history_points(row, parameter, settings["window_days"], rows)
    if len(points) < settings["min_points"]:
        return PlainScore(parameter, "statistical", None)
    centre = statistics.median(points)
    spread = MAD_TO_SIGMA * statistics.median([abs(p - centre) for p in points])
    value = row.values.get(parameter)
    score = None
    if value is not None:
        distance = abs(value - centre)
        score = ("fail" if distance > settings["k_fail"] * spread
                 else "warn" if distance > settings["k_warn"] * spread else "ok")
    half = settings["k_warn"] * spread
    return PlainScore(parameter, "statistical", score, centre - half, centre + half, centre, spread, len(points))


def _specificity(threshold: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    return "detector" in threshold, "setting" in threshold, "profile" in threshold


def chosen(file: PlainFile, parameter: str, row: PlainRow) -> list[dict[str, Any]]:
    """Per kind, the most specific threshold of ``file`` matching ``row`` (detector, then setting, then profile);
    the first written on a tie [convention]."""
    matching = [t for t in file.thresholds if t["parameter"] == parameter
                and t.get("profile", row.profile) == row.profile
                and fnmatchcase(row.setting_key, t.get("setting", "*"))
                and t.get("detector", row.detector) == row.detector]
    out = []
    for kind in ("fixed", "statistical"):
        of_kind = sorted((t for t in matching if t["kind"] == kind), key=_specificity, reverse=True)  # stable
        out += of_kind[:1]
    return out


def plain_scores(row: PlainRow, file: PlainFile | None, rows: Iterable[PlainRow]) -> list[PlainScore]:
    """Every score of ``row`` against ``file`` (None: the built-in thresholds); ``rows``: the table's rows (any)."""
    rows = list(rows)
    if file is None:
        return _built_in(row)
    found = []
    for parameter in sorted({t["parameter"] for t in file.thresholds}):
        if parameter not in PARAMETERS[row.profile]:
            continue
        for threshold in chosen(file, parameter, row):
            if threshold["kind"] == "fixed":
                low, high = threshold.get("low"), threshold.get("high")
                score = _fixed(row.values.get(parameter), low, high, threshold.get("severity", DEFAULTS["severity"]))
                found.append(PlainScore(parameter, "fixed", score, low, high))
            else:
                found.append(_statistical(row, parameter, threshold, rows))
    return found


def _built_in(row: PlainRow) -> list[PlainScore]:
    """Contract 5 limits as ``fail`` (median_snr <= 250, max_flux > its limit), contract 7 limits as ``warn``."""
    values = row.values
    snr, flux = values.get("median_snr"), values.get("max_flux")
    limit = MAX_FLUX_LIMIT[row.profile]
    found = [PlainScore("median_snr", "fixed", None if snr is None else "fail" if snr <= SNR_LIMIT else "ok",
                        math.nextafter(SNR_LIMIT, math.inf)),  # stored low bound: the least value that passes
             PlainScore("max_flux", "fixed", None if flux is None else "fail" if flux > limit else "ok", None, limit)]
    if row.profile == "crires":
        for parameter, (low, high) in TREND_LIMITS.get(row.setting_key, {}).items():
            found.append(PlainScore(parameter, "fixed", _fixed(values.get(parameter), low, high, "warn"), low, high))
    return found


def score_columns(found: Sequence[PlainScore], parameters: Iterable[str]) -> dict[str, str | None]:
    """``score_<parameter>`` (the worst of its thresholds) for each of ``parameters``, and ``score`` (the row's)."""
    columns = {f"score_{p}": plain_worst(s.score for s in found if s.parameter == p) for p in parameters}
    return columns | {"score": plain_worst(s.score for s in found)}
