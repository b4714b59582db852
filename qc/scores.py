"""Scores of QC1 values against fixed and statistical thresholds, and their roll-up (contract 9).

Pure functions over numbers and small records: the service reads the history (earlier rows of the same parameter,
profile, setting and detector, without failed or rejected sets) and hands it in as :class:`History`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from qc.thresholds import Threshold, ThresholdFile, ThresholdKind

MAD_SCALE = 1.4826
"""Scales the median absolute deviation to the standard deviation of a normal distribution."""


class Score(StrEnum):
    """A value's score; ``None`` stands for no score (no threshold, or too little history)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


RANK: Mapping[Score | None, int] = {None: 0, Score.OK: 1, Score.WARN: 2, Score.FAIL: 3}
"""Worse scores rank higher; no score is below ``ok``."""


def worst(scores: Iterable[Score | str | None]) -> Score | None:
    """The worst of ``scores`` (``fail`` > ``warn`` > ``ok`` > none); None when none is scored."""
    ranked = [None if s is None else Score(s) for s in scores]
    return max(ranked, key=RANK.__getitem__, default=None)


@dataclass(frozen=True)
class Band:
    """The statistics of a parameter's earlier values: ``centre`` = median, ``spread`` = 1.4826 × MAD."""

    centre: float
    spread: float
    n_points: int


def statistical_band(values: np.ndarray, min_points: int) -> Band | None:
    """The band of the finite ``values`` (the earlier rows in the window); None with fewer than ``min_points``."""
    finite = values[np.isfinite(values)]
    if finite.size < min_points:
        return None
    centre = float(np.median(finite))
    return Band(centre, MAD_SCALE * float(np.median(np.abs(finite - centre))), int(finite.size))


def statistical_score(value: float, band: Band, k_warn: float, k_fail: float) -> Score:
    """``fail`` beyond ``k_fail`` spreads from the centre, ``warn`` beyond ``k_warn``, else ``ok``; a spread of 0
    fails every value but the centre."""
    distance = abs(value - band.centre)
    if distance > k_fail * band.spread:
        return Score.FAIL
    if distance > k_warn * band.spread:
        return Score.WARN
    return Score.OK


def fixed_score(value: float, threshold: Threshold) -> Score:
    """``ok`` inside ``[low, high]`` (a missing bound is no bound), else the threshold's severity."""
    inside = ((threshold.low is None or value >= threshold.low)
              and (threshold.high is None or value <= threshold.high))
    return Score.OK if inside else Score(threshold.severity.value)


@dataclass(frozen=True)
class History:
    """Earlier rows of one detector of one profile and setting: their ``mjd`` [d] and each parameter's values (NaN
    for NULL), rows already without failed, rejected or superseded sets."""

    mjd: np.ndarray
    values: Mapping[str, np.ndarray]

    def window(self, parameter: str, t: float, days: float) -> np.ndarray:
        """The values of ``parameter`` with ``MJD-OBS`` in ``[t - days, t)``."""
        column = self.values.get(parameter)
        if column is None:
            return np.empty(0)
        return column[(self.mjd >= t - days) & (self.mjd < t)]


EMPTY_HISTORY = History(np.empty(0), {})


@dataclass(frozen=True)
class ParameterScore:
    """The score of one value against one threshold, with what it was scored against."""

    detector: int
    parameter: str
    kind: ThresholdKind
    score: Score | None
    value: float | None
    low: float | None = None
    high: float | None = None
    """Fixed: the bounds. Statistical: centre ∓ k_warn × spread (the warning band)."""
    centre: float | None = None
    spread: float | None = None
    n_points: int | None = None
    """Statistical: earlier rows the band was made of (None: fixed)."""


def score_value(value: float | None, threshold: Threshold, t: float | None, history: History,
                detector: int) -> ParameterScore:
    """Score one value against one threshold (``t``: the row's ``MJD-OBS``; statistical thresholds need it)."""
    known = value is not None and math.isfinite(value)
    if threshold.kind == ThresholdKind.FIXED:
        score = fixed_score(value, threshold) if known and value is not None else None
        return ParameterScore(detector, threshold.parameter, threshold.kind, score, value, threshold.low,
                              threshold.high)
    band = (statistical_band(history.window(threshold.parameter, t, threshold.window_days), threshold.min_points)
            if t is not None else None)
    if band is None:
        return ParameterScore(detector, threshold.parameter, threshold.kind, None, value)
    score = statistical_score(value, band, threshold.k_warn, threshold.k_fail) if known and value is not None else None
    half = threshold.k_warn * band.spread
    return ParameterScore(detector, threshold.parameter, threshold.kind, score, value, band.centre - half,
                          band.centre + half, band.centre, band.spread, band.n_points)


@dataclass(frozen=True)
class RowScores:
    """The scores of one QC1 row (one detector of a set)."""

    detector: int
    scores: tuple[ParameterScore, ...] = field(default=())

    def of(self, parameter: str) -> Score | None:
        """The parameter's score: the worst of its thresholds' (None: not scored)."""
        return worst(s.score for s in self.scores if s.parameter == parameter)

    @property
    def score(self) -> Score | None:
        """The row's worst score."""
        return worst(s.score for s in self.scores)

    def columns(self, parameters: Sequence[str]) -> dict[str, str | None]:
        """``score_<parameter>`` of each of ``parameters`` and ``score``, as stored in the QC1 row."""
        return {f"score_{p}": _text(self.of(p)) for p in parameters} | {"score": _text(self.score)}


def score_row(values: Mapping[str, float | int | None], detector: int, mjd_obs: float | None, profile: str,
              setting_key: str, thresholds: ThresholdFile, history: History) -> RowScores:
    """Score every parameter of one QC1 row that has a threshold in force in ``thresholds``."""
    scored = [score_value(_number(values[p]), threshold, mjd_obs, history, detector)
              for p in sorted(thresholds.parameters) if p in values
              for threshold in thresholds.in_force(p, profile, setting_key, detector)]
    return RowScores(detector, tuple(scored))


def worst_text(values: Iterable[Score | str | None]) -> str | None:
    """The worst of ``values`` as stored (``ok``, ``warn``, ``fail``); None when none is scored."""
    return _text(worst(values))


def _number(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def _text(score: Score | None) -> str | None:
    return None if score is None else score.value
