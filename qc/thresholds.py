"""Thresholds of the scores, dated in time (contract 9): the records, the TOML file format, the built-in defaults and
which file and which threshold are in force.

A :class:`ThresholdFile` is read from text (:func:`parse_threshold_file`); a file that breaks the format raises
:class:`ThresholdFileError` naming the file, the line and the key. Reading the folder is the service's job.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from qc.config import QCConfig

BUILT_IN = "built-in"
"""The name a score records when no threshold file was in force."""
EPOCH = date(1900, 1, 1)
"""``valid_from`` of the built-in thresholds: before any night."""


class ThresholdKind(StrEnum):
    FIXED = "fixed"
    """``low`` / ``high`` bounds; outside them is ``severity``."""
    STATISTICAL = "statistical"
    """Median and scaled MAD of the earlier rows of the same parameter, profile, setting and detector."""


class Severity(StrEnum):
    """What a value outside a fixed threshold scores."""

    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Threshold:
    """One ``[[threshold]]`` of a file: what it applies to and its bounds or statistics."""

    parameter: str
    """A QC1 column."""
    kind: ThresholdKind
    profile: str | None = None
    """This instrument profile only (None: any)."""
    setting: str | None = None
    """Glob over setting keys (None: any)."""
    detector: int | None = None
    """This detector only (None: any)."""
    low: float | None = None
    high: float | None = None
    """Fixed: allowed range [low, high], either bound may be absent; a value equal to a bound is inside."""
    severity: Severity = Severity.FAIL
    window_days: float = 90.0
    """Statistical: earlier rows with ``MJD-OBS`` in ``[t - window_days, t)`` [d]."""
    min_points: int = 5
    """Statistical: fewer earlier rows than this, no score."""
    k_warn: float = 3.0
    k_fail: float = 5.0
    """Statistical: ``warn`` beyond ``k_warn`` spreads from the centre, ``fail`` beyond ``k_fail``."""
    line: int | None = None
    """Line of its ``[[threshold]]`` header in the file (None: built-in)."""

    def applies_to(self, profile: str, setting_key: str, detector: int) -> bool:
        """Whether this threshold selects rows of ``profile``, ``setting_key`` and ``detector``."""
        return ((self.profile is None or self.profile == profile)
                and (self.setting is None or fnmatchcase(setting_key, self.setting))
                and (self.detector is None or self.detector == detector))

    @property
    def specificity(self) -> tuple[bool, bool, bool]:
        """Orders matching thresholds of one kind: detector, then setting, then profile (contract 9)."""
        return self.detector is not None, self.setting is not None, self.profile is not None


@dataclass(frozen=True)
class ThresholdFile:
    """The thresholds of one file, in force from ``valid_from`` (a night DATE) on."""

    name: str
    """File name, or :data:`BUILT_IN`."""
    sha256: str | None
    """Content hash of the file (None: built-in)."""
    valid_from: date
    thresholds: tuple[Threshold, ...]

    def in_force(self, parameter: str, profile: str, setting_key: str, detector: int) -> tuple[Threshold, ...]:
        """The thresholds that score ``parameter`` of one row: the most specific matching one of each kind (the
        first written on a tie), fixed before statistical."""
        chosen: dict[ThresholdKind, Threshold] = {}
        for threshold in self.thresholds:
            if threshold.parameter != parameter or not threshold.applies_to(profile, setting_key, detector):
                continue
            held = chosen.get(threshold.kind)
            if held is None or threshold.specificity > held.specificity:
                chosen[threshold.kind] = threshold
        return tuple(chosen[kind] for kind in ThresholdKind if kind in chosen)

    @property
    def parameters(self) -> frozenset[str]:
        """The parameters some threshold of the file scores."""
        return frozenset(t.parameter for t in self.thresholds)


class ThresholdFileError(ValueError):
    """A threshold file that breaks the format: which file, line and key, and what is wrong."""

    def __init__(self, name: str, line: int | None, key: str | None, problem: str) -> None:
        where = name + (f", line {line}" if line is not None else "") + (f", key {key!r}" if key else "")
        super().__init__(f"{where}: {problem}")
        self.name, self.line, self.key, self.problem = name, line, key, problem


def file_in_force(files: Iterable[ThresholdFile], night: date, built_in: ThresholdFile) -> ThresholdFile:
    """The newest file whose ``valid_from`` <= ``night``; ``built_in`` when there is none (contract 9)."""
    candidates = [f for f in files if f.valid_from <= night]
    return max(candidates, key=lambda f: (f.valid_from, f.name)) if candidates else built_in


def built_in_thresholds(configs: Mapping[str, QCConfig]) -> ThresholdFile:
    """The defaults without a file, per profile (``{profile name: its QCConfig}``): the certification limits of
    contract 5 as ``fail`` and the HealthCheck trend limits of contract 7 as ``warn``."""
    thresholds: list[Threshold] = []
    for profile, config in configs.items():
        # contract 5.1 fails median_snr <= snr_limit: the inclusive low bound is the next double above the limit
        thresholds.append(Threshold("median_snr", ThresholdKind.FIXED, profile,
                                    low=math.nextafter(config.snr_limit, math.inf)))
        thresholds.append(Threshold("max_flux", ThresholdKind.FIXED, profile, high=config.max_flux_limit))
        for key, limits in config.trend_limits.items():
            for parameter in ("mean_flux", "rms_master"):
                low, high = getattr(limits, parameter)
                thresholds.append(Threshold(parameter, ThresholdKind.FIXED, profile, _literal_glob(key), low=low,
                                            high=high, severity=Severity.WARN))
    return ThresholdFile(BUILT_IN, None, EPOCH, tuple(thresholds))


def _literal_glob(key: str) -> str:
    """A glob matching exactly ``key`` (``[``, ``*``, ``?`` escaped)."""
    return re.sub(r"([\[\]*?])", r"[\1]", key)


# The file format ---------------------------------------------------------------------------------------------------

REQUIRED = ("parameter", "kind")
OPTIONAL: Mapping[str, type | tuple[type, ...]] = {
    "profile": str, "setting": str, "detector": int, "low": (int, float), "high": (int, float), "severity": str,
    "window_days": (int, float), "min_points": int, "k_warn": (int, float), "k_fail": (int, float),
}
FIXED_ONLY = ("low", "high", "severity")
STATISTICAL_ONLY = ("window_days", "min_points", "k_warn", "k_fail")
_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*threshold[ \t]*\]\]", re.MULTILINE)  # [ \t]: not across lines
_SYNTAX_LINE = re.compile(r"at line (\d+)")


def parse_threshold_file(name: str, text: str, parameters: Iterable[str], profiles: Iterable[str]) -> ThresholdFile:
    """A threshold file from its ``text`` (TOML, contract 9), checked: ``valid_from`` a date, every threshold with a
    known ``parameter`` (one of ``parameters``) and ``kind``, a known ``profile``, keys of its kind with values of
    the right type, ``low`` <= ``high``, positive windows and factors with ``k_warn`` <= ``k_fail``."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _SYNTAX_LINE.search(str(exc))
        raise ThresholdFileError(name, int(found.group(1)) if found else None, None,
                                 f"not valid TOML ({exc})") from None
    known_parameters, known_profiles = frozenset(parameters), frozenset(profiles)
    headers = [text.count("\n", 0, m.start()) + 1 for m in _HEADER.finditer(text)]
    lines = text.splitlines()

    def line_of(key: str, start: int | None = None) -> int | None:
        """The line assigning ``key`` (in the table starting at line ``start``, else at the top)."""
        begin = (start or 1) - 1
        for number in range(begin, len(lines)):
            if number > begin and start is not None and _HEADER.match(lines[number]):
                break
            if re.match(rf"\s*{re.escape(key)}\s*=", lines[number]):
                return number + 1
        return start

    for key in document:
        if key not in ("valid_from", "threshold"):
            raise ThresholdFileError(name, line_of(key), key, "unknown key (allowed: valid_from, [[threshold]])")
    valid_from = document.get("valid_from")
    if valid_from is None:
        raise ThresholdFileError(name, None, "valid_from", "missing: the night DATE from which the file is in force")
    if not isinstance(valid_from, date) or hasattr(valid_from, "hour"):
        raise ThresholdFileError(name, line_of("valid_from"), "valid_from",
                                 f"must be a TOML date such as 2010-05-01, not {valid_from!r}")
    tables = document.get("threshold", [])
    if not isinstance(tables, list):
        raise ThresholdFileError(name, line_of("threshold"), "threshold", "must be an array of tables [[threshold]]")
    thresholds = tuple(_threshold(name, table, headers[i] if i < len(headers) else None, line_of, known_parameters,
                                  known_profiles) for i, table in enumerate(tables))
    digest = hashlib.sha256(text.encode()).hexdigest()
    return ThresholdFile(name, digest, valid_from, thresholds)


def _threshold(name: str, table: dict[str, Any], start: int | None, line_of: Any, parameters: frozenset[str],
               profiles: frozenset[str]) -> Threshold:
    """One ``[[threshold]]`` table, checked."""

    def error(key: str | None, problem: str) -> ThresholdFileError:
        return ThresholdFileError(name, line_of(key, start) if key else start, key, problem)

    for key in REQUIRED:
        if key not in table:
            raise error(None, f"[[threshold]] without {key!r} (required)")
    for key, value in table.items():
        expected = str if key in REQUIRED else OPTIONAL.get(key)
        if expected is None:
            raise error(key, f"unknown key (allowed: {', '.join((*REQUIRED, *OPTIONAL))})")
        if isinstance(value, bool) or not isinstance(value, expected):
            wanted = "a number" if expected == (int, float) else getattr(expected, "__name__", str(expected))
            raise error(key, f"must be {'a string' if wanted == 'str' else 'an integer' if wanted == 'int' else wanted}"
                             f", not {value!r}")
    if table["parameter"] not in parameters:
        raise error("parameter", f"{table['parameter']!r} is not a QC1 parameter")
    try:
        kind = ThresholdKind(table["kind"])
    except ValueError:
        raise error("kind", f"must be \"fixed\" or \"statistical\", not {table['kind']!r}") from None
    if "profile" in table and table["profile"] not in profiles:
        raise error("profile", f"must be one of {', '.join(sorted(profiles))}, not {table['profile']!r}")
    misplaced = [k for k in (STATISTICAL_ONLY if kind == ThresholdKind.FIXED else FIXED_ONLY) if k in table]
    if misplaced:
        raise error(misplaced[0], f"is not a key of a {kind} threshold")
    if kind == ThresholdKind.FIXED:
        if "low" not in table and "high" not in table:
            raise error(None, "a fixed threshold needs low, high or both")
        if "low" in table and "high" in table and table["low"] > table["high"]:
            raise error("high", f"high {table['high']} is below low {table['low']}")
        if "severity" in table and table["severity"] not in tuple(Severity):
            raise error("severity", f"must be \"fail\" or \"warn\", not {table['severity']!r}")
    else:
        for key in ("window_days", "min_points", "k_warn", "k_fail"):
            if key in table and table[key] <= 0:
                raise error(key, f"must be positive, not {table[key]}")
        if table.get("k_warn", 3.0) > table.get("k_fail", 5.0):
            raise error("k_warn", "k_warn must not exceed k_fail")
    values: dict[str, Any] = {k: float(v) if k in ("low", "high", "window_days", "k_warn", "k_fail") else v
                              for k, v in table.items()}
    values["kind"] = kind
    if "severity" in values:
        values["severity"] = Severity(values["severity"])
    return Threshold(**values, line=start)


def describe(threshold: Threshold) -> str:
    """One line people read, e.g. ``mean_flux fixed [200, 950] warn (crires, 1090.400_25.000_Halogen)``."""
    if threshold.kind == ThresholdKind.FIXED:
        low = "-inf" if threshold.low is None else f"{threshold.low:g}"
        high = "inf" if threshold.high is None else f"{threshold.high:g}"
        rule = f"fixed [{low}, {high}] {threshold.severity}"
    else:
        rule = (f"statistical {threshold.window_days:g} d, >= {threshold.min_points} points, warn > "
                f"{threshold.k_warn:g} spread, fail > {threshold.k_fail:g} spread")
    scope = [s for s in (threshold.profile, threshold.setting,
                         None if threshold.detector is None else f"detector {threshold.detector}") if s]
    return f"{threshold.parameter} {rule}" + (f" ({', '.join(scope)})" if scope else "")


def sorted_files(files: Sequence[ThresholdFile]) -> list[ThresholdFile]:
    """Files oldest ``valid_from`` first (name on a tie)."""
    return sorted(files, key=lambda f: (f.valid_from, f.name))
