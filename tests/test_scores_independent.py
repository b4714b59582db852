"""Scores of hand-made histories (contract 9) by a second, plain implementation (:mod:`tests.plain_scores`),
compared with the pure core and with the stored results of the real path on SQLite and PostgreSQL.

Each case states its answer by hand (the contract's arithmetic in the comments), checks that the plain
implementation gives it, then that every path of the service gives exactly what the plain one gives: the columns
``score_<parameter>``, ``score``, ``thresholds_file``, ``thresholds_sha256`` and the details of every score (bounds or
band, centre, spread, number of earlier points).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flatqc.db import connect, crires_flat
from flatqc.last_good import find_last_good
from flatqc.lifecycle.reviews import decide
from flatqc.scoring import rescore_set, sets_to_rescore
from flatqc.threshold_files import load_thresholds
from qc.scores import worst
from tests.plain_scores import KEY, PlainRow, plain_worst
from tests.score_paths import (
    CONFIGS,
    ENGINES,
    Scenario,
    Scored,
    core_scored,
    fill,
    set_score,
    store,
    stored_of,
    stored_scored,
)
from tests.test_last_good import probe

T = 55400.5
"""``MJD-OBS`` of the scored set [d]; binary fractions below keep the window edges exact."""
NIGHT = "2010-07-23"
MAD = 1.4826

Service = Callable[[Scenario], list[dict[int, Scored]]]


@pytest.fixture(params=["core", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Service:
    """The service's answers for a scenario: the pure core's, or, through a real database, what ``scored_rows``
    stored and what ``rescore_set`` stored then (whose set roll-up must be the worst of the stored rows)."""
    if request.param == "core":
        return lambda scenario: [core_scored(scenario)]
    engine = request.getfixturevalue(ENGINES[request.param])

    def stored(scenario: Scenario) -> list[dict[int, Scored]]:
        first, again, rescored = stored_scored(scenario, engine, tmp_path / "thresholds")
        assert rescored is not None and rescored.after == set_score(again)
        return [first, again]

    return stored


def check(service: Service, scenario: Scenario, expected: Mapping[int, Mapping[str, Any]]) -> dict[int, Scored]:
    """The plain implementation gives the hand-computed ``expected`` columns per detector, and every path of the
    service gives exactly the plain result."""
    plain = scenario.plain()
    for detector, columns in expected.items():
        assert {k: plain[detector].columns[k] for k in columns} == dict(columns)
    for got in service(scenario):
        assert got == plain
    return plain


def toml(valid_from: str, *thresholds: Mapping[str, Any]) -> str:
    """A threshold file's text."""
    lines = [f"valid_from = {valid_from}  # a TOML date"]
    for threshold in thresholds:
        lines += ["", "[[threshold]]", *(f"{k} = {json.dumps(v)}" for k, v in threshold.items())]
    return "\n".join(lines) + "\n"


def statistical(**keys: Any) -> dict[str, str]:
    """One file in force since 2010-01-01 with a statistical threshold on mean_flux."""
    return {"stat.toml": toml("2010-01-01", {"parameter": "mean_flux", "kind": "statistical"} | keys)}


def earlier(*points: tuple[float, float | None], **keys: Any) -> tuple[PlainRow, ...]:
    """Rows of other sets: ``(days before T, mean_flux)`` each."""
    return tuple(PlainRow(f"h{i}", T - days, {"mean_flux": value}, **keys) for i, (days, value) in enumerate(points))


def subject(values: Mapping[str, float | None], mjd: float | None = T, night: str = NIGHT,
            detectors: tuple[int, ...] = (1,), **keys: Any) -> tuple[PlainRow, ...]:
    return tuple(PlainRow("s", mjd, values, detector=d, night=night, **keys) for d in detectors)


PLUS = {"profile": "crires+", "setting_key": "K2166_w_0.2"}
"""A CRIRES+ row's keys."""
SPREAD_2 = ((7, 96.0), (5, 98.0), (4, 100.0), (3, 102.0), (1, 104.0))
"""Five earlier points: centre 100, |deviations| 4 2 0 2 4, MAD 2, spread 2.9652 (warn beyond 8.8956, fail beyond
14.826)."""


def band(score: str | None, centre: float, mad: float, n: int, k_warn: float = 3.0) -> tuple[Any, ...]:
    spread = MAD * mad
    return ("mean_flux", "statistical", score, centre - k_warn * spread, centre + k_warn * spread, centre, spread, n)


# Window edges, min_points, zero spread, k boundaries ------------------------------------------------------------

@pytest.mark.parametrize(("edge", "expected"), [
    (10.0, band("warn", 100.0, 2.0, 5)),  # exactly t - window_days: in the window, the fifth point
    (10.0 + 2 ** -10, ("mean_flux", "statistical", None, None, None, None, None, None)),  # just before: 4 points
])
def test_window_edges(service: Service, edge: float, expected: tuple[Any, ...]) -> None:
    """[t - window_days, t): a row at t - window_days counts, one of another set at t does not, nor the row
    itself; value 110 is 10 from the centre: beyond 3 spreads, within 5."""
    rows = (*earlier((edge, 96.0), *SPREAD_2[1:], (0.0, 1000.0), (10.0 + 2 ** -9, 1000.0)),
            *subject({"mean_flux": 110.0}))
    plain = check(service, Scenario(rows, "s", statistical(window_days=10)), {1: {"score_mean_flux": expected[2]}})
    assert plain[1].details == [expected]


def test_each_threshold_its_own_window(service: Service) -> None:
    """Windows of 10 days (any detector) and 400 days (detector 2) in one file: each row's band is made of its own
    threshold's window, however long."""
    file = toml("2010-01-01", {"parameter": "mean_flux", "kind": "statistical", "window_days": 10, "min_points": 3},
                {"parameter": "mean_flux", "kind": "statistical", "window_days": 400, "min_points": 3, "detector": 2})
    points = ((1, 100.0), (2, 101.0), (3, 102.0), (100, 50.0), (200, 60.0), (400, 70.0), (400 + 2 ** -10, 1e6))
    rows = (*(PlainRow(f"h{d}{i}", T - days, {"mean_flux": v}, detector=d)
              for i, (days, v) in enumerate(points) for d in (1, 2)), *subject({"mean_flux": 100.0}, detectors=(1, 2)))
    plain = check(service, Scenario(rows, "s", {"f.toml": file}), {1: {"score": "ok"}, 2: {"score": "ok"}})
    # detector 1: 100 101 102, centre 101, MAD 1; detector 2: 50 60 70 100 101 102, centre 85, MAD 16.5
    assert [plain[d].details for d in (1, 2)] == [[band("ok", 101.0, 1.0, 3)], [band("ok", 85.0, 16.5, 6)]]


@pytest.mark.parametrize(("n_earlier", "expected"), [(4, None), (5, "ok")])
def test_min_points(service: Service, n_earlier: int, expected: str | None) -> None:
    """Five earlier points make a score, four do not, even with the row itself and a set at the same time."""
    rows = (*earlier(*SPREAD_2[:n_earlier], (0.0, 100.0)), *subject({"mean_flux": 101.0}))
    check(service, Scenario(rows, "s", statistical()), {1: {"score_mean_flux": expected, "score": expected}})


@pytest.mark.parametrize(("value", "expected"), [(100.0, "ok"), (100.001, "fail"), (99.999, "fail"), (0.0, "fail")])
def test_zero_spread(service: Service, value: float, expected: str) -> None:
    """All earlier values equal: spread 0; the same value is ok, any other fails."""
    rows = (*earlier(*((d, 100.0) for d in (1, 2, 3, 4, 5))), *subject({"mean_flux": value}))
    plain = check(service, Scenario(rows, "s", statistical()), {1: {"score_mean_flux": expected}})
    assert plain[1].details == [band(expected, 100.0, 0.0, 5)]


def beyond(x: float) -> float:
    """The next float farther from 0."""
    return math.nextafter(x, math.copysign(math.inf, x))


S = MAD * 1.0
"""Spread of the earlier values -2 -1 0 1 2 (centre 0, MAD 1); centre 0 makes |value - centre| = value exactly."""


@pytest.mark.parametrize(("value", "expected"), [
    (3 * S, "ok"), (beyond(3 * S), "warn"), (-3 * S, "ok"), (beyond(-3 * S), "warn"),
    (5 * S, "warn"), (beyond(5 * S), "fail"), (-5 * S, "warn"), (beyond(-5 * S), "fail"),
])
def test_k_boundaries(service: Service, value: float, expected: str) -> None:
    """Exactly k × spread from the centre is not beyond it (defaults k_warn 3, k_fail 5)."""
    rows = (*earlier(*zip((1, 2, 3, 4, 5), (-2.0, -1.0, 0.0, 1.0, 2.0), strict=True)), *subject({"mean_flux": value}))
    check(service, Scenario(rows, "s", statistical()), {1: {"score_mean_flux": expected}})


@pytest.mark.parametrize(("value", "expected"), [(2 * S, "ok"), (beyond(2 * S), "warn"), (4.5 * S, "warn"),
                                                 (beyond(4.5 * S), "fail")])
def test_k_of_the_file(service: Service, value: float, expected: str) -> None:
    rows = (*earlier(*zip((1, 2, 3, 4, 5), (-2.0, -1.0, 0.0, 1.0, 2.0), strict=True)), *subject({"mean_flux": value}))
    check(service, Scenario(rows, "s", statistical(k_warn=2, k_fail=4.5)), {1: {"score_mean_flux": expected}})


# Review, certification, versions --------------------------------------------------------------------------------

EXCLUDED = ("warn", band("warn", 100.0, 2.0, 5))
"""x left out: the five points of SPREAD_2, value 110 beyond 3 spreads."""
COUNTED = ("ok", band("ok", 101.0, 3.0, 6))
"""x (200) counted: median 101, |deviations| 5 3 1 1 3 99, MAD 3, spread 4.4478: 9 from the centre is within 3."""


@pytest.mark.parametrize(("x", "decisions", "expected"), [
    ({}, (), COUNTED),
    ({}, (("x", "rejected"),), EXCLUDED),
    ({}, (("x", "accepted"),), COUNTED),
    ({}, (("x", "rejected"), ("x", "accepted")), COUNTED),  # accepted again: counts again
    ({}, (("x", "accepted"), ("x", "rejected")), EXCLUDED),
    ({}, (("x", "rejected"), ("s", "accepted")), EXCLUDED),  # a decision on another set changes nothing
    ({"verdict": "not_assessable"}, (), COUNTED),
    ({"verdict": "failed"}, (("x", "accepted"),), EXCLUDED),  # failed certification never counts
    ({"superseded": True}, (("x", "accepted"),), EXCLUDED),  # nor a superseded version
    ({"setting_key": "1090.400_25.000_Emitter"}, (), EXCLUDED),  # another setting
    ({"detector": 2}, (), EXCLUDED),  # another detector
    ({"profile": "crires+"}, (), EXCLUDED),  # another profile (its own table)
], ids=["good", "rejected", "accepted", "accepted-again", "rejected-later", "other-set", "not-assessable",
        "failed", "superseded", "other-setting", "other-detector", "other-profile"])
def test_review_and_certification_exclusions(service: Service, x: dict[str, Any],
                                             decisions: tuple[tuple[str, str], ...],
                                             expected: tuple[str, tuple[Any, ...]]) -> None:
    rows = (*earlier(*SPREAD_2), PlainRow("x", T - 0.5, {"mean_flux": 200.0}, **x), *subject({"mean_flux": 110.0}))
    plain = check(service, Scenario(rows, "s", statistical(), decisions), {1: {"score_mean_flux": expected[0]}})
    assert plain[1].details == [expected[1]]


def test_a_set_rejected_in_review_is_no_last_good_set(db_url: str) -> None:
    """The same review decisions move the last good set: b rejected, a is the last good set of s; b accepted
    again, b is."""
    engine = connect(db_url)
    rows = [PlainRow("a", T - 2, {}), PlainRow("b", T - 1, {}), PlainRow("s", T, {})]
    fill(engine, Scenario(tuple(rows), "s"), rows)
    found = []
    for decision in ("rejected", "accepted", "rejected"):
        with engine.begin() as conn:
            decide(conn, ["b"], decision, "tester")
        found.append(find_last_good(engine, probe("s", T, KEY)).set_id)  # type: ignore[union-attr]
    assert found == ["a", "b", "a"]
    engine.dispose()


def test_crires_plus_bit_counts_against_their_own_history(service: Service) -> None:
    """CRIRES+ rows (their own table, detectors 1..3) scored on a BPM bit count: statistical over CRIRES+ rows of the
    setting only, a fixed bound for this profile; a CRIRES-only threshold does not apply."""
    file = toml("2010-01-01", {"parameter": "bpm_dark", "kind": "statistical", "min_points": 3},
                {"parameter": "bpm_edge", "kind": "fixed", "profile": "crires+", "high": 100},
                {"parameter": "bpm_dark", "kind": "fixed", "profile": "crires", "high": 0})
    history = [PlainRow(f"p{i}", T - 1 - i, {"bpm_dark": v}, detector=d, **PLUS)
               for i, v in enumerate((10, 12, 11, 500)) for d in (1, 3)]
    history += [PlainRow(f"c{i}", T - 1, {"bpm_dark": 10 ** 6}, detector=1) for i in range(3)]  # CRIRES rows
    rows = (*history, PlainRow("s", T, {"bpm_dark": 20, "bpm_edge": 101}, detector=1, **PLUS),
            PlainRow("s", T, {"bpm_dark": 11, "bpm_edge": 100}, detector=3, **PLUS))
    # earlier 10 12 11 500: median 11.5, |deviations| 1.5 0.5 0.5 488.5, MAD 1, spread 1.4826: 20 is 8.5 away (fail)
    check(service, Scenario(rows, "s", {"f.toml": file}),
          {1: {"score_bpm_dark": "fail", "score_bpm_edge": "fail"}, 3: {"score_bpm_dark": "ok", "score": "ok"}})


# Dated files and built-in thresholds -------------------------------------------------------------------------

DATED = {
    "zz_first.toml": toml("2010-05-01", {"parameter": "mean_flux", "kind": "fixed", "high": 500.0}),
    "aa_second.toml": toml("2010-06-01", {"parameter": "mean_flux", "kind": "fixed", "high": 500.0,
                                          "severity": "warn"}),
    "mm_empty.toml": toml("2011-01-01"),
}
"""Named so that the name order is not the date order. A file in force replaces the built-in thresholds: the empty
one scores nothing."""


@pytest.mark.parametrize(("night", "file", "expected"), [
    ("2010-04-30", "built-in", "fail"),  # no file in force: median_snr 200 fails (contract 5), mean_flux ok
    ("2010-05-01", "zz_first.toml", "fail"),
    ("2010-05-31", "zz_first.toml", "fail"),
    ("2010-06-01", "aa_second.toml", "warn"),
    ("2010-12-31", "aa_second.toml", "warn"),
    ("2011-01-01", "mm_empty.toml", None),
    ("2014-12-31", "mm_empty.toml", None),
])
def test_dated_files_switch_at_valid_from(service: Service, night: str, file: str, expected: str | None) -> None:
    rows = subject({"mean_flux": 600.0, "median_snr": 200.0}, night=night, detectors=(1, 2))
    plain = check(service, Scenario(rows, "s", DATED), {1: {"score_mean_flux": "ok" if file == "built-in" else expected,
                                                            "score": expected}})
    assert {s.thresholds_file for s in plain.values()} == {file}
    if file != "built-in":
        assert {s.thresholds_sha256 for s in plain.values()} == {hashlib.sha256(DATED[file].encode()).hexdigest()}


@pytest.mark.parametrize(("values", "keys", "expected"), [
    ({"median_snr": 250.0}, {}, "fail"),  # contract 5.1: median_snr <= 250 fails
    ({"median_snr": 250.5}, {}, "ok"),
    ({"median_snr": 12.0}, {}, "fail"),
    ({"median_snr": None}, {}, None),  # N < 3: not scored
    ({"max_flux": 10000.0}, {}, "ok"),  # contract 5.2: > 10000 fails
    ({"max_flux": 10000.5}, {}, "fail"),
    ({"max_flux": 37000.0}, PLUS, "ok"),  # contract 8: 37000 ADU
    ({"max_flux": 37000.5}, PLUS, "fail"),
    ({"median_snr": 250.0}, PLUS, "fail"),
    ({"mean_flux": 199.9}, {}, "warn"),  # contract 7 at 1090.4 nm: 200..950 as warn
    ({"mean_flux": 200.0}, {}, "ok"),
    ({"mean_flux": 950.0}, {}, "ok"),
    ({"mean_flux": 950.1}, {}, "warn"),
    ({"rms_master": 0.0799}, {"setting_key": "3218.600_25.000_Halogen"}, "warn"),  # 0.08..0.145
    ({"rms_master": 0.145}, {"setting_key": "3218.600_25.000_Halogen"}, "ok"),
    ({"rms_master": 0.1001}, {"setting_key": "4092.900_25.000_Halogen"}, "warn"),  # 0.05..0.10
    ({"mean_flux": 10.0}, {"setting_key": "2340.000_25.000_Halogen"}, None),  # no trend limits for this setting
    ({"mean_flux": 10.0}, PLUS, None),  # none for CRIRES+
    ({"mean_level": 1e9, "badpix": 10 ** 6, "rms_master": 9.0}, {"setting_key": "2340.000_25.000_Halogen"}, None),
])
def test_built_in_thresholds(service: Service, values: dict[str, float | None], keys: dict[str, Any],
                             expected: str | None) -> None:
    """Without any file: contract 5 limits as fail, contract 7 limits as warn, nothing else scored."""
    (parameter, _value), *_ = values.items()
    rows = subject(values, night="2009-01-01", detectors=(1, 3), **keys)
    check(service, Scenario(rows, "s"), {d: {f"score_{parameter}": expected, "score": expected} for d in (1, 3)})


# Most specific threshold, kinds together, severity, NULL ---------------------------------------------------------

LADDER = [  # (keys, high); value 720 is above 700 and 650 only
    ({}, 1000.0),
    ({"profile": "crires"}, 900.0),
    ({"setting": "1090.400_*"}, 800.0),
    ({"setting": KEY, "profile": "crires"}, 750.0),
    ({"detector": 2}, 700.0),
    ({"detector": 4, "profile": "crires"}, 650.0),
    ({"profile": "crires+"}, 1.0),  # never match
    ({"detector": 3, "setting": "3218.600_*"}, 1.0),
    ({"setting": "1090.400_25.000_Emitter", "detector": 1, "profile": "crires"}, 1.0),
]


@pytest.mark.parametrize(("steps", "highs"), [
    (1, {1: 1000.0, 2: 1000.0}),  # only the catch-all
    (2, {1: 900.0, 2: 900.0}),  # profile beats nothing
    (3, {1: 800.0, 2: 800.0}),  # setting beats profile
    (4, {1: 750.0, 2: 750.0}),  # setting and profile beat setting
    (len(LADDER), {1: 750.0, 2: 700.0, 3: 750.0, 4: 650.0}),  # detector beats setting and profile
])
@pytest.mark.parametrize("order", [1, -1])
def test_most_specific_threshold_wins(service: Service, steps: int, highs: dict[int, float], order: int) -> None:
    """Of the thresholds of a kind matching a row, the one with a detector wins, then with a setting, then with a
    profile, whatever their order in the file."""
    thresholds = [{"parameter": "mean_flux", "kind": "fixed"} | keys | {"high": high}
                  for keys, high in LADDER[:steps]][::order]
    rows = subject({"mean_flux": 720.0}, detectors=tuple(highs))
    plain = check(service, Scenario(rows, "s", {"f.toml": toml("2010-01-01", *thresholds)}),
                  {d: {"score_mean_flux": "ok" if high > 720.0 else "fail"} for d, high in highs.items()})
    assert {d: s.details[0][4] for d, s in plain.items()} == highs


@pytest.mark.parametrize(("fixed", "stat", "expected"), [
    ({"high": 105.0}, {}, ("fail", "warn", "fail")),
    ({"high": 200.0}, {}, ("ok", "warn", "warn")),
    ({"high": 105.0, "severity": "warn"}, {"k_fail": 3.2}, ("warn", "fail", "fail")),  # 10 > 3.2 x 2.9652
    ({"low": 0.0, "high": 200.0}, {"min_points": 6}, ("ok", None, "ok")),
    ({"high": 105.0, "severity": "warn"}, {"k_warn": 3.5, "k_fail": 4}, ("warn", "ok", "warn")),  # 10 < 10.38
])
def test_fixed_and_statistical_on_one_parameter_worst_wins(service: Service, fixed: dict[str, Any],
                                                           stat: dict[str, Any], expected: tuple[Any, ...]) -> None:
    file = toml("2010-01-01", {"parameter": "mean_flux", "kind": "fixed"} | fixed,
                {"parameter": "mean_flux", "kind": "statistical"} | stat)
    rows = (*earlier(*SPREAD_2), *subject({"mean_flux": 110.0}))
    plain = check(service, Scenario(rows, "s", {"f.toml": file}), {1: {"score_mean_flux": expected[2]}})
    assert [d[2] for d in plain[1].details] == list(expected[:2])  # fixed, statistical


@pytest.mark.parametrize(("value", "expected"), [(99.99, "warn"), (100.0, "ok"), (1e12, "ok"), (-1.0, "warn")])
def test_severity_warn_on_a_fixed_threshold(service: Service, value: float, expected: str) -> None:
    """A low bound only, severity warn: below it warns, the bound itself is inside, no upper bound."""
    file = toml("2010-01-01", {"parameter": "mean_flux", "kind": "fixed", "low": 100, "severity": "warn"},
                {"parameter": "rms_master", "kind": "fixed", "high": 0.4})
    rows = subject({"mean_flux": value, "rms_master": 0.41})
    check(service, Scenario(rows, "s", {"f.toml": file}),
          {1: {"score_mean_flux": expected, "score_rms_master": "fail", "score": "fail"}})


BOTH = toml("2010-01-01", {"parameter": "mean_flux", "kind": "fixed", "low": 0.0},
            {"parameter": "mean_flux", "kind": "statistical", "min_points": 4})


@pytest.mark.parametrize(("history", "value", "mjd", "expected"), [
    (SPREAD_2, None, T, None),  # the row's own value NULL: neither kind scores it
    ((*SPREAD_2[:3], (3, None), (2, None)), 101.0, T, "ok"),  # NULL earlier values are no points: 3 < 4...
    ((*SPREAD_2[:4], (2, None)), 200.0, T, "fail"),  # ... 4 are enough
    (SPREAD_2, 200.0, None, "ok"),  # MJD-OBS unknown: no statistical score; fixed ok
])
def test_null_values_are_not_scored(service: Service, history: tuple[tuple[float, float | None], ...],
                                    value: float | None, mjd: float | None, expected: str | None) -> None:
    rows = (*earlier(*history), *subject({"mean_flux": value}, mjd=mjd))
    check(service, Scenario(rows, "s", {"f.toml": BOTH}), {1: {"score_mean_flux": expected, "score": expected}})


# Roll-up and what each row records ------------------------------------------------------------------------------

def test_row_and_set_roll_up(service: Service) -> None:
    """Built-in thresholds at 1090.4 nm: detector 1 ok and warn -> warn; detector 2 fails max_flux -> fail;
    detector 3 all ok; detector 4 nothing scored (NULL values; mean_flux and rms_master missing) -> none."""
    rows = (PlainRow("s", T, {"mean_flux": 500.0, "rms_master": 0.2, "median_snr": 300.0}, detector=1),
            PlainRow("s", T, {"mean_flux": 500.0, "rms_master": 0.1, "max_flux": 12000.0}, detector=2),
            PlainRow("s", T, {"mean_flux": 500.0, "rms_master": 0.1, "max_flux": 9000.0}, detector=3),
            PlainRow("s", T, {}, detector=4))
    plain = check(service, Scenario(rows, "s"), {
        1: {"score_mean_flux": "ok", "score_rms_master": "warn", "score_median_snr": "ok", "score": "warn"},
        2: {"score_max_flux": "fail", "score": "fail"}, 3: {"score": "ok"}, 4: {"score": None}})
    assert set_score(plain) == "fail"


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_night_roll_up_and_what_each_row_records(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    """Three sets of one night scored and written one after the other as the QC job does (three sets of an earlier
    night make their history): each row records the file in force (name, sha256 of its bytes), each set's score is
    the worst of its rows', the night's the worst of its sets'; re-scoring the night as ``flatqc rescore`` does
    (later rows now in the table) changes nothing."""
    engine = request.getfixturevalue(ENGINES[kind])
    files = {"f.toml": toml("2010-07-01", {"parameter": "mean_flux", "kind": "statistical", "min_points": 3},
                            {"parameter": "rms_master", "kind": "fixed", "high": 0.1, "severity": "warn"})}
    folder = tmp_path / "thresholds"
    folder.mkdir()
    (folder / "f.toml").write_text(files["f.toml"])
    thresholds = load_thresholds(folder, CONFIGS)
    history = tuple(PlainRow(f"h{i}", T - 10 + i, {"mean_flux": v, "rms_master": 0.09}, detector=d, night="2010-07-13")
                    for i, v in enumerate((99.0, 100.0, 101.0)) for d in (1, 2))
    tonight = {"a": ({"mean_flux": 100.0, "rms_master": 0.09}, {"mean_flux": 100.5, "rms_master": 0.09}),  # ok
               "b": ({"mean_flux": 100.0, "rms_master": 0.2}, {"mean_flux": 100.0, "rms_master": 0.09}),  # warn
               "c": ({"mean_flux": 100.0, "rms_master": 0.09}, {"mean_flux": 130.0, "rms_master": 0.09})}  # fail
    fill(engine, Scenario(history, "none"), list(history))
    rows = list(history)
    for i, (set_id, values) in enumerate(tonight.items()):
        mine = [PlainRow(set_id, T + i / 24, v, detector=d, night=NIGHT) for d, v in enumerate(values, start=1)]
        store(engine, thresholds, mine)
        rows += mine
    expected = {set_id: Scenario(tuple(rows), set_id, files).plain() for set_id in tonight}
    assert {set_id: stored_of(engine, "crires", set_id) for set_id in tonight} == expected
    assert {(s.thresholds_file, s.thresholds_sha256) for p in expected.values() for s in p.values()} == {
        ("f.toml", hashlib.sha256((folder / "f.toml").read_bytes()).hexdigest())}
    set_scores = {set_id: set_score(p) for set_id, p in expected.items()}
    assert set_scores == {"a": "ok", "b": "warn", "c": "fail"}
    assert worst(set_scores.values()) == plain_worst(set_scores.values()) == "fail"
    again = [rescore_set(engine, thresholds, table, s) for table, s in sets_to_rescore(engine, NIGHT, NIGHT)]
    assert [(r.set_id, r.before, r.after) for r in again if r] == [(s, v, v) for s, v in set_scores.items()]
    assert {set_id: stored_of(engine, "crires", set_id) for set_id in tonight} == expected


def test_the_stored_hash_is_that_of_the_files_bytes(db_url: str, tmp_path: Path) -> None:
    """A file with Windows line ends, a comment and non-ASCII text: ``thresholds_sha256`` is the sha256 of its
    bytes, as ``sha256sum`` prints it."""
    content = toml("2010-01-01", {"parameter": "mean_flux", "kind": "fixed", "high": 1.0}).replace(
        "# a TOML date", "# from the lamp change (Ångström)").replace("\n", "\r\n").encode()
    folder = tmp_path / "thresholds"
    folder.mkdir()
    (folder / "crlf.toml").write_bytes(content)
    engine = connect(db_url)
    rows = list(subject({"mean_flux": 2.0}))
    fill(engine, Scenario(tuple(rows), "s"), rows)
    rescore_set(engine, load_thresholds(folder, CONFIGS), crires_flat, "s")
    with engine.connect() as conn:
        stored = conn.execute(select(crires_flat.c.thresholds_file, crires_flat.c.thresholds_sha256,
                                     crires_flat.c.score)).one()
    engine.dispose()
    assert tuple(stored) == ("crlf.toml", hashlib.sha256(content).hexdigest(), "fail")
