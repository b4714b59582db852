"""Property-based comparison of the plain implementation (:mod:`tests.plain_scores`) with the service on random small
histories: values (NULLs, ties, equal values), ``MJD-OBS`` on and around the window edges, verdicts, review
decisions, superseded versions, other settings and detectors, random windows, ``min_points`` and k factors,
detector-specific overrides, fixed thresholds of random scope, and subject values put exactly on (or one float
beyond) ``k × spread`` from the centre. The pure core is compared on many examples, the stored path (``scored_rows``
then ``rescore_set``) on fewer, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.plain_scores import KEY, PlainRow, chosen, history_points, read_file
from tests.score_paths import ENGINES, Scenario, core_scored, stored_scored

T = 55400.5
OTHER_KEY = "1090.400_25.000_Emitter"

small = st.integers(-4, 4).map(float)
values = st.one_of(small, small, st.floats(-1e4, 1e4, allow_nan=False), st.none())
"""Small integers make ties, zero spreads and values on the centre frequent; a NULL now and then."""
positive = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0]), st.floats(0.01, 8.0))

GOOD = [{"detector": d} for d in (1, 2)]
OTHER = [{"detector": 2, "setting_key": OTHER_KEY}, {"verdict": "not_assessable"}, {"verdict": "failed"},
         {"superseded": True}, {"verdict": "failed", "superseded": True}]
ROW_KINDS = st.sampled_from([(keys, made) for keys in [*GOOD * 6, *OTHER]
                             for made in [(), (), ("accepted",), ("rejected",), ("rejected", "accepted"),
                                          ("accepted", "rejected")]])
"""An earlier row's keys and the review decisions on its set (oldest first): mostly of the scored set's setting,
not failed, not superseded."""


@st.composite
def statistical_keys(draw: st.DrawFn) -> dict[str, Any]:
    """Keys of a statistical threshold; each absent (its default) now and then."""
    keys: dict[str, Any] = {}
    if draw(st.booleans()):
        keys["window_days"] = draw(st.one_of(st.sampled_from([1.0, 2.5, 10.0, 90.0, 365.0]), st.floats(0.25, 120.0)))
    if draw(st.booleans()):
        keys["min_points"] = draw(st.integers(1, 6))
    k_warn, extra = draw(positive), draw(st.one_of(st.just(0.0), positive))
    if draw(st.booleans()):
        keys["k_warn"] = k_warn
        keys["k_fail"] = k_warn + extra
    return keys


@st.composite
def fixed_threshold(draw: st.DrawFn) -> dict[str, Any]:
    """A fixed threshold on rms_master of random scope, bounds and severity."""
    keys: dict[str, Any] = {"parameter": "rms_master", "kind": "fixed"}
    for key, choices in (("profile", ["crires", "crires+"]), ("setting", [KEY, "1090.400_*", OTHER_KEY]),
                         ("detector", [1, 2])):
        if draw(st.booleans()):
            keys[key] = draw(st.sampled_from(choices))
    low, high = sorted(draw(st.lists(st.integers(-3, 3).map(float), min_size=2, max_size=2)))
    bounds = draw(st.sampled_from(["low", "high", "both"]))
    keys |= {"low": low} if bounds == "low" else {"high": high} if bounds == "high" else {"low": low, "high": high}
    if draw(st.booleans()):
        keys["severity"] = draw(st.sampled_from(["warn", "fail"]))
    return keys


def toml_text(thresholds: list[dict[str, Any]]) -> str:
    lines = ["valid_from = 2010-01-01"]
    for threshold in thresholds:
        lines += ["[[threshold]]", *(f"{k} = {json.dumps(v)}" for k, v in threshold.items())]
    return "\n".join(lines) + "\n"


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A file with a statistical threshold on mean_flux (and perhaps one for detector 2 only) and fixed ones on
    rms_master; up to 32 earlier rows of other sets; the scored set's detectors 1 and 2."""
    general = {"parameter": "mean_flux", "kind": "statistical"} | draw(statistical_keys())
    thresholds = [general, *draw(st.lists(fixed_threshold(), max_size=4))]
    if draw(st.booleans()):
        thresholds.append({"parameter": "mean_flux", "kind": "statistical", "detector": 2} | draw(statistical_keys()))
    window = general.get("window_days", 90.0)
    inside = st.floats(2 ** -10, window)
    offsets = st.one_of(inside, inside, inside, st.floats(-2.0, window * 1.5),
                        st.sampled_from([0.0, window, window + 2 ** -10, window - 2 ** -10, 2 ** -10, -1.0]))
    """Days before t: mostly inside the window, on and around its edges, at t, later."""
    row = st.tuples(ROW_KINDS, offsets, values)
    drawn = draw(st.integers(0, 32).flatmap(lambda n: st.lists(row, min_size=n, max_size=n)))
    rows = [PlainRow(f"h{i}", T - offset, {"mean_flux": value}, **keys)
            for i, ((keys, _), offset, value) in enumerate(drawn)]
    decisions = [(f"h{i}", d) for i, ((_, made), *_) in enumerate(drawn) for d in made]
    file = toml_text(thresholds)
    subject = []
    for detector in (1, 2):
        probe = PlainRow("s", T, {}, detector=detector)
        scenario = Scenario((*rows, probe), "s", {"f.toml": file}, tuple(decisions))
        subject.append(PlainRow("s", T, {"mean_flux": draw(subject_value(scenario, probe)),
                                         "rms_master": draw(values)}, detector=detector))
    return Scenario((*rows, *subject), "s", {"f.toml": file}, tuple(decisions))


def subject_value(scenario: Scenario, probe: PlainRow) -> st.SearchStrategy[float | None]:
    """Any value, or one on the centre, at exactly k_warn or k_fail spreads from it, or one float beyond."""
    (threshold,) = chosen(read_file("f.toml", scenario.files["f.toml"]), "mean_flux", probe)
    points = history_points(probe, "mean_flux", threshold.get("window_days", 90.0),
                            scenario.table_rows())
    if not points:
        return values
    centre = statistics.median(points)
    spread = 1.4826 * statistics.median([abs(p - centre) for p in points])
    edges = [centre + sign * threshold.get(k, default) * spread
             for sign in (1, -1) for k, default in (("k_warn", 3.0), ("k_fail", 5.0))]
    return st.one_of(values, st.just(centre), st.sampled_from(edges),
                     st.sampled_from([math.nextafter(e, math.copysign(math.inf, e - centre)) for e in edges]))


def describe(scenario: Scenario) -> None:
    """Tell hypothesis's statistics which cases were drawn."""
    for scored in scenario.plain().values():
        for detail in scored.details:
            event(f"{detail[1]} {detail[2]}")


@pytest.mark.slow
@settings(max_examples=300, deadline=None, database=None, print_blob=True)
@given(scenario=scenarios())
def test_the_core_scores_as_the_plain_implementation(scenario: Scenario) -> None:
    describe(scenario)
    assert core_scored(scenario) == scenario.plain()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(max_examples=40, deadline=None, database=None, print_blob=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_the_stored_scores_are_the_plain_implementations(request: pytest.FixtureRequest,
                                                         tmp_path_factory: pytest.TempPathFactory, kind: str,
                                                         scenario: Scenario) -> None:
    """Each example empties the module's database and fills it anew."""
    engine = request.getfixturevalue(ENGINES[kind])
    first, again, rescored = stored_scored(scenario, engine, Path(tmp_path_factory.getbasetemp()) / "properties")
    plain = scenario.plain()
    assert first == again == plain
    assert rescored is not None and rescored.before == rescored.after
