"""Trend plots coloured by score (contract 9): the robust y range, aliens, step bands and colours as pure functions
(against values worked out by hand), then the trend data, the dashboard's SVG and the report PNGs of a scored
history with a drift, a step and a wild value, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import FillBetweenPolyCollection, PathCollection
from matplotlib.colors import to_hex
from PIL import Image
from sqlalchemy import insert, text

from flatqc.db import connect, crires_flat
from flatqc.settings import Settings
from flatqc.trend_data import TREND_COLUMNS, load_trends, newest_per_key, setting_keys
from flatqc.web.app import create_app
from qc.config import QCConfig
from qc.trends import (
    BAND_COLOUR,
    SCORE_COLOURS,
    Bounds,
    TrendSeries,
    aliens,
    axis_range,
    mjd_to_date_number,
    score_colour,
    steps,
    trend_figure,
    trend_plot,
)
from tests.trend_history import KEY, write_scored_history
from worker.trends import draw_key

# --- pure: y range, aliens, steps, colours ---------------------------------------------------------------------------


def test_one_wild_value_is_an_alien_and_does_not_stretch_the_range() -> None:
    values = np.array([10.0, 11.0, 12.0, 13.0, 100.0])
    # bulk: 2nd percentile taken upward = sorted[ceil(0.08)] = 11, 98th downward = sorted[floor(3.92)] = 13; width 2;
    # kept within [11 - 2, 13 + 2]: 10..13; margin 6 % of 3 = 0.18
    assert axis_range(values) == pytest.approx((9.82, 13.18))
    below, above = aliens(values, (9.82, 13.18))
    assert below.tolist() == [False] * 5 and above.tolist() == [False, False, False, False, True]
    low_wild = np.array([-50.0, 10.0, 11.0, 12.0, 13.0])  # bulk 10..12, kept within [8, 14]: 10..13
    assert axis_range(low_wild) == pytest.approx((9.82, 13.18))
    assert aliens(low_wild, (9.82, 13.18))[0].tolist() == [True, False, False, False, False]


def test_bounds_widen_the_core_but_not_the_fence() -> None:
    values = np.array([10.0, 11.0, 12.0, 13.0, 100.0])
    # core 5..20 (the bounds), fence 2 bulk widths wide: [3, 22]; margin 6 % of 15 = 0.9; NaN bounds are ignored
    assert axis_range(values, [5.0, np.nan, 20.0]) == pytest.approx((4.1, 20.9))
    assert axis_range(values, [5.0, 20.0], fence=50.0) == pytest.approx((5 - 5.7, 100 + 5.7))  # span 95


def test_a_step_is_drawn_as_a_level_not_as_aliens() -> None:
    values = np.array([10.0] * 10 + [5.0] * 3)  # sorted: 5 5 5 10 ...; bulk sorted[1] = 5 .. sorted[11] = 10
    assert axis_range(values) == pytest.approx((5 - 0.3, 10 + 0.3))
    below, above = aliens(values, axis_range(values))
    assert not below.any() and not above.any()


def test_degenerate_ranges() -> None:
    assert axis_range(np.array([7.0, 7.0, 7.0])) == pytest.approx((6.65, 7.35))  # zero width: 10 % of 7
    assert axis_range(np.array([0.0])) == pytest.approx((-0.5, 0.5))  # 1 at zero
    assert axis_range(np.array([np.nan])) == (0.0, 1.0)
    assert axis_range(np.array([np.nan]), [2.0, 4.0]) == pytest.approx((1.88, 4.12))
    below, above = aliens(np.array([np.nan, 1.0, 9.0]), (0.0, 5.0))
    assert below.tolist() == [False, False, False] and above.tolist() == [False, False, True]


def test_steps_hold_each_value_over_its_share_of_time() -> None:
    x = np.array([0.0, 2.0, 4.0, 6.0])
    # edges: 0, 1, 3, 5, 6; the NaN splits the curve into runs [0] and [2, 3]
    (first_x, (first_y,)), (second_x, (second_y,)) = steps(x, np.array([1.0, np.nan, 3.0, 4.0]))
    assert first_x.tolist() == [0.0, 1.0] and first_y.tolist() == [1.0, 1.0]
    assert second_x.tolist() == [3.0, 5.0, 5.0, 6.0] and second_y.tolist() == [3.0, 3.0, 4.0, 4.0]
    ((xs, (low, high)),) = steps(x[:2], np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert xs.tolist() == [0.0, 1.0, 1.0, 2.0] and low.tolist() == [1, 1, 2, 2] and high.tolist() == [3, 3, 4, 4]
    assert steps(np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([np.nan, 2.0]))[0][0].tolist() == [0.5, 1.0]
    assert steps(np.empty(0), np.empty(0)) == []


def test_colours_by_score_and_fixed_lines_beside_the_limits() -> None:
    assert [score_colour(s) for s in ("ok", "warn", "fail", None)] == ["#2ca02c", "#f39c12", "#d62728", "#9a9a9a"]
    with pytest.raises(KeyError):
        score_colour("excellent")
    fixed = Bounds(np.array([200.0, 150.0]), np.array([950.0, 900.0])).other_than((200.0, 950.0))
    assert np.isnan(fixed.low[0]) and fixed.low[1] == 150.0 and np.isnan(fixed.high[0]) and fixed.high[1] == 900.0


def test_figure_has_a_panel_per_detector_the_band_and_the_aliens_counted() -> None:
    mjd = 55000.0 + np.arange(6)
    series = [TrendSeries(f"det {d}", d, mjd, np.array([10.0, 11.0, 12.0, 11.0, 10.0, 100.0 if d == 2 else 11.0]),
                          ("ok", "warn", "fail", None, "ok", "fail"),
                          Bounds(np.full(6, 9.0), np.full(6, 13.0), np.full(6, 11.0))) for d in (1, 2)]
    fig = trend_figure("FLATSTAB", "mean_flux [ADU/s]", series, limits=(5.0, 20.0))
    assert len(fig.axes) == 2
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "1 above the y range" in texts and "0 below the y range" in texts and "not scored" in texts
    fills = [c for c in fig.axes[1].collections if isinstance(c, FillBetweenPolyCollection)]
    assert fills and {to_hex(f.get_facecolor()[0]) for f in fills} == {BAND_COLOUR}
    assert point_colours(fig.axes[1]) == {SCORE_COLOURS[s] for s in ("ok", "warn", "fail", None)}


def point_colours(ax: Axes) -> set[str]:
    """The colours of the points (and aliens) of a panel."""
    return {to_hex(c) for coll in ax.collections if isinstance(coll, PathCollection) for c in coll.get_facecolor()}


def test_trend_dates_are_days_since_1970() -> None:
    assert mjd_to_date_number(np.array([40587.0, 55329.5])).tolist() == [0.0, 14742.5]


def test_trend_figure_dates_integer_ticks_and_legend_beside_the_limits(tmp_path: Path) -> None:
    from matplotlib.dates import ConciseDateFormatter

    series = [TrendSeries("det 2", 2, np.array([55329.4, 55330.4, 55331.4]), np.array([12.0, 13.0, 15.0]))]
    fig = trend_figure("BADPIX", "badpix [pixels]", series, limits=(10.0, 14.0), integer=True)
    ax = fig.axes[0]
    assert isinstance(ax.xaxis.get_major_formatter(), ConciseDateFormatter)
    assert point_colours(ax) == {SCORE_COLOURS[None]}  # not scored: grey
    ax.figure.canvas.draw()
    assert all(float(t).is_integer() for t in ax.get_yticks())
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 > ax.get_window_extent().x1  # beside the axes, never over a limit line
    assert trend_plot(tmp_path / "b.png", "BADPIX", "badpix [pixels]", series, integer=True).exists()


def rgb(colour: str) -> tuple[int, ...]:
    """``#rrggbb`` as (r, g, b) in 0..255."""
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


# --- a scored history in the database ------------------------------------------------------------------------------

NIGHTS = 40
"""Nights of the history: the step at night 30, the wild value at night 20 (detector 2)."""


@pytest.fixture()
def scored(db_url: str) -> dict:
    engine = connect(db_url)
    history = write_scored_history(engine, nights=NIGHTS, detectors=(1, 2), step_night=30, wild_night=20)
    yield {"engine": engine, "history": history, "url": db_url}
    engine.dispose()


def score_rows(engine, parameter: str) -> dict[tuple[str, int], tuple]:  # noqa: ANN001
    """(set, detector) -> (score column, statistical low, centre, high) as stored, read with plain SQL."""
    with engine.connect() as conn:
        return {(r[0], r[1]): tuple(r[2:]) for r in conn.execute(text(
            f"SELECT q.set_id, q.detector, q.score_{parameter}, s.low, s.centre, s.high FROM crires_flat q "
            "LEFT JOIN scores s ON s.set_id = q.set_id AND s.detector = q.detector AND s.parameter = :p "
            "AND s.kind = 'statistical'"), {"p": parameter})}


def test_trend_data_carry_scores_and_the_stored_band(scored: dict) -> None:
    engine = scored["engine"]
    stored = score_rows(engine, "mean_flux")
    assert {v[0] for v in stored.values()} == {"ok", "warn", "fail", None}
    trends = load_trends(engine, crires_flat, TREND_COLUMNS)
    assert list(trends) == [KEY] == setting_keys(engine, crires_flat)
    detector_2 = trends[KEY]["mean_flux"][1]
    assert detector_2.detector == 2 and len(detector_2.mjd) == NIGHTS
    for i, set_id in enumerate(detector_2.set_ids):
        score, low, centre, high = stored[(set_id, 2)]
        assert detector_2.scores[i] == score
        assert detector_2.band is not None
        got = (detector_2.band.low[i], detector_2.band.centre[i], detector_2.band.high[i])  # type: ignore[index]
        assert got == pytest.approx((np.nan if low is None else low, np.nan if centre is None else centre,
                                     np.nan if high is None else high), nan_ok=True)
    badpix = trends[KEY]["badpix"][0]
    assert badpix.fixed is not None and np.all(badpix.fixed.high == 25.0) and np.all(np.isnan(badpix.fixed.low))
    with engine.connect() as conn:
        assert newest_per_key(conn, crires_flat) == {KEY: pytest.approx(scored["history"].mjd[-1])}
    last_week = load_trends(engine, crires_flat, TREND_COLUMNS, KEY, days=6.5)[KEY]["mean_flux"][0]
    assert len(last_week.mjd) == 7 and last_week.mjd[0] == pytest.approx(scored["history"].mjd[-7])


def test_an_empty_table_has_no_trends(db_url: str) -> None:
    engine = connect(db_url)
    assert load_trends(engine, crires_flat, TREND_COLUMNS, days=30) == {} and setting_keys(engine, crires_flat) == []
    engine.dispose()


def svg_charts(page: str) -> list[ET.Element]:
    """The inline SVG charts of a page, parsed as XML."""
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def test_dashboard_chart_draws_scores_band_and_aliens(scored: dict, tmp_path: Path) -> None:
    engine = scored["engine"]
    settings = Settings(db_url=scored["url"], qc_output=tmp_path / "qc")
    client = create_app(settings, engine, None).test_client()
    page = client.get(f"/trends?key={KEY}&days=all").get_data(as_text=True)
    charts = svg_charts(page)
    assert len(charts) == 4  # FLATSTAB mean_flux and rms_master, FLAT_IRHa, BADPIX
    flux = next(c for c in charts if "mean_flux" in c.get("aria-label", ""))
    assert [t.text for t in flux.iter("text") if "panel" in classes(t)] == ["det 1", "det 2"]
    points = [e for e in flux.iter("circle") if "point" in classes(e)]
    found = Counter((next(c for c in classes(e) if c.startswith("score-")), e.get("fill")) for e in points)
    stored = score_rows(engine, "mean_flux")
    expected = Counter((f"score-{v[0] or 'none'}", score_colour(v[0])) for v in stored.values())
    wild = expected[("score-fail", SCORE_COLOURS["fail"])]
    # every row is a dot in its score's colour, but the wild one: a triangle at the top edge
    assert found == expected - Counter({("score-fail", SCORE_COLOURS["fail"]): 1}) and wild >= 2
    (alien,) = [e for e in flux.iter("polygon") if "alien" in classes(e)]
    assert classes(alien) == {"alien", "alien-above", "score-fail"} and alien.get("fill") == SCORE_COLOURS["fail"]
    assert "above the axis" in alien.find("title").text  # type: ignore[union-attr]
    legend = [t.text for t in flux.iter("text")]
    assert "1 above the y range" in legend and "0 below the y range" in legend
    assert len([e for e in flux.iter("polygon") if "band" in classes(e)]) >= 2  # a band per detector
    assert all(e.get("fill") == BAND_COLOUR for e in flux.iter("polygon") if "band" in classes(e))
    assert len([e for e in flux.iter("polyline") if "centre" in classes(e)]) >= 2
    assert len([e for e in flux.iter("line") if "limit" in classes(e)]) == 4  # 200 and 950 in both panels
    badpix = next(c for c in charts if "badpix" in c.get("aria-label", ""))
    assert len([e for e in badpix.iter("polyline") if "fixed" in classes(e)]) == 2  # high = 25 in both panels
    api = client.get(f"/api/trends?key={KEY}&days=all").get_json()
    series = next(c for c in api if c["report"] == "FLATSTAB" and c["parameter"] == "mean_flux")["series"][1]
    assert series["scores"] == [stored[(s, 2)][0] for s in series["set_ids"]]
    assert series["band"]["low"][-1] == pytest.approx(stored[(series["set_ids"][-1], 2)][1])


def pixels(png: Path, colour: str) -> int:
    """How many pixels of ``png`` have exactly ``colour``."""
    return int((np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3) == rgb(colour)).all(axis=1).sum())


def test_report_png_is_drawn_with_the_band_and_score_colours(scored: dict, tmp_path: Path) -> None:
    written = draw_key(scored["engine"], crires_flat, QCConfig(), tmp_path, KEY)
    png = next(p for p in written if p.name.endswith("_mean_flux.png"))
    assert pixels(png, BAND_COLOUR) > 2000  # the shaded band, in pixels of its own colour
    assert all(pixels(png, colour) > 20 for colour in SCORE_COLOURS.values())


def test_report_png_without_scores_has_no_band(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(insert(crires_flat), [
            {"set_id": f"s{i}", "night": "2010-05-12", "mjd_obs": 55329.0 + i, "setting_key": KEY, "n_raw": 3,
             "raw_type": "FLAT", "detector": 1, "mean_flux": 500.0 + i, "rms_master": 0.1, "badpix": 10,
             "certified": True, "verdict": "passed", "master_file": f"s{i}.fits"} for i in range(5)])
    png = next(p for p in draw_key(engine, crires_flat, QCConfig(), tmp_path, KEY) if "mean_flux" in p.name)
    assert pixels(png, BAND_COLOUR) == 0 and pixels(png, SCORE_COLOURS[None]) > 20
    engine.dispose()
