"""The front page's board (contract 9): per profile and setting, the latest set's score and verdict, the days since
the last good set and the latest night's review state, against hand-made rows on SQLite and PostgreSQL and against a
plain reading of the same rows; and the board in a real headless Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, insert

from flatqc.db import QC1_TABLES, connect, sets
from flatqc.lifecycle.reviews import decide
from flatqc.settings import Settings
from flatqc.web.app import create_app
from tests.test_web import chromium, open_dashboard  # noqa: F401 - chromium: the fixture, shared

SCREENS = Path(__file__).resolve().parents[1] / "test-artifacts"
A, B, C, D = "1090.400_25.000_Halogen", "3218.600_25.000_Halogen", "4092.900_25.000_Halogen", "2199.100_15.000_Halogen"
P = "K2166_w_0.2"


@dataclass(frozen=True)
class HandSet:
    """A set as the test writes it: its QC1 rows' scores (one per detector), and whether a newer version of its
    files superseded the version its rows were computed from."""

    set_id: str
    key: str
    night: str
    mjd: float | None
    verdict: str
    scores: tuple[str | None, ...]
    profile: str = "crires"
    superseded: bool = False


HAND_SETS = (
    HandSet("a1", A, "2010-05-01", 55317.10, "passed", ("ok", "ok", "ok", "ok")),  # A's last good set
    HandSet("a2", A, "2010-05-02", 55318.10, "not_assessable", ("ok", "ok", "ok", "ok")),  # rejected in review
    HandSet("a3", A, "2010-05-03", 55319.10, "passed", ("ok", "ok", "ok", "ok"), superseded=True),
    HandSet("a4", A, "2010-05-04", 55320.10, "failed", ("fail", "ok", "ok", "ok")),
    HandSet("a5", A, "2010-05-05", 55321.05, "passed", ("ok", "ok", "ok", "ok")),  # rejected in review
    HandSet("a6", A, "2010-05-05", 55321.10, "failed", ("ok", "fail", "warn", None)),  # A's latest
    HandSet("a7", A, "2010-05-06", None, "passed", ("warn",) * 4),  # no MJD-OBS: not on the board
    HandSet("b1", B, "2010-05-01", 55317.20, "passed", ("ok", "ok", "ok", "ok")),
    HandSet("b2", B, "2010-05-04", 55320.20, "passed", ("ok", "ok", None, "ok")),
    HandSet("b3", B, "2010-05-04", 55320.30, "not_assessable", ("ok", "ok", "ok", "ok")),  # B's latest, good
    HandSet("c1", C, "2010-05-02", 55318.30, "failed", ("fail",) * 4),
    HandSet("c2", C, "2010-05-03", 55319.30, "failed", (None,) * 4),  # not scored, no good set ever
    HandSet("d1", D, "2010-05-03", 55319.40, "passed", ("ok", "warn", "ok", "ok")),
    HandSet("p1", P, "2010-05-02", 55318.50, "passed", ("ok", "ok", "ok")),
    HandSet("p2", P, "2010-05-03", 55319.50, "failed", ("warn", "ok", "fail"), profile="crires+"),
)
"""Hand-made sets; p1 is a CRIRES set whose key looks like a CRIRES+ one (the board keeps the profiles apart)."""

DECISIONS = (  # in this order: a later decision on a set replaces the earlier
    (["a1"], "rejected", "anna"), (["a1"], "accepted", "anna"),
    (["a2"], "accepted", "bob"), (["a2"], "rejected", "bob"),
    (["a5"], "rejected", "anna"),
    (["b2"], "accepted", "bob"), (["b3"], "rejected", "carl"), (["b3"], "accepted", "carl"),
    (["c1"], "rejected", "anna"),
)
TABLE_OF = {"crires": "crires_flat", "crires+": "criresp_flat"}


def write_hand_sets(engine: Engine) -> None:
    """The sets of :data:`HAND_SETS` in ``sets`` and the QC1 tables, then the :data:`DECISIONS`."""
    with engine.begin() as conn:
        for hand in HAND_SETS:
            version = f"{hand.set_id}-old" if hand.superseded else f"{hand.set_id}-v1"
            conn.execute(insert(sets).values(set_id=hand.set_id, version=version, night=hand.night,
                                             profile=hand.profile, setting_key=hand.key, raw_type="FLAT", n_raw=3,
                                             state="superseded" if hand.superseded else "done", verdict=hand.verdict))
            if hand.superseded:
                conn.execute(insert(sets).values(set_id=hand.set_id, version=f"{hand.set_id}-new", night=hand.night,
                                                 profile=hand.profile, setting_key=hand.key, state="queued"))
            conn.execute(insert(QC1_TABLES[TABLE_OF[hand.profile]]), [
                {"set_id": hand.set_id, "version": version, "night": hand.night, "mjd_obs": hand.mjd,
                 "setting_key": hand.key, "n_raw": 3, "raw_type": "FLAT", "detector": detector,
                 "certified": hand.verdict != "failed", "verdict": hand.verdict,
                 "master_file": f"/nowhere/{hand.set_id}.fits", "score": score}
                for detector, score in enumerate(hand.scores, start=1)])
        for set_ids, decision, reviewer in DECISIONS:
            decide(conn, set_ids, decision, reviewer)


# --- the plain reading of the hand-made sets ----------------------------------------------------------------------

RANK = {"fail": 3, "warn": 2, "ok": 1, None: 0}


def decision_in_force(set_id: str) -> tuple[str, str] | None:
    """(decision, reviewer) of the last decision on ``set_id``, or None."""
    made = [(decision, reviewer) for set_ids, decision, reviewer in DECISIONS if set_id in set_ids]
    return made[-1] if made else None


def expected_board() -> list[dict[str, Any]]:
    """The board of :data:`HAND_SETS` read plainly: latest set by MJD-OBS, its worst score, the newest set not
    failed, not superseded and not rejected, and the decisions in force on the sets of the latest night."""
    groups = []
    for profile, title in (("crires", "CRIRES"), ("crires+", "CRIRES+")):
        rows = []
        for key in sorted({h.key for h in HAND_SETS if h.profile == profile}):
            timed = [h for h in HAND_SETS if h.profile == profile and h.key == key and h.mjd is not None]
            latest = max(timed, key=lambda h: h.mjd or 0.0)
            good = [h for h in timed if h.verdict != "failed" and not h.superseded
                    and (decision_in_force(h.set_id) or ("", ""))[0] != "rejected"]
            last_good = max(good, key=lambda h: h.mjd or 0.0) if good else None
            night = [h for h in HAND_SETS if h.profile == profile and h.key == key and h.night == latest.night]
            decided = [d for d in (decision_in_force(h.set_id) for h in night) if d is not None]
            score = max(latest.scores, key=RANK.__getitem__)
            reviewers = sorted({reviewer for _, reviewer in decided})
            review = ("not reviewed" if not decided else f"{len(decided)} of {len(night)} reviewed"
                      if len(decided) < len(night) else "reviewed by " + ", ".join(reviewers))
            rows.append({
                "setting_key": key, "score": score, "verdict": latest.verdict, "set_id": latest.set_id,
                "night": latest.night, "mjd_obs": latest.mjd,
                "last_good": None if last_good is None else {"set_id": last_good.set_id, "night": last_good.night,
                                                             "mjd_obs": last_good.mjd},
                "days_since_good": None if last_good is None else (latest.mjd or 0.0) - (last_good.mjd or 0.0),
                "night_sets": len(night), "night_reviewed": len(decided),
                "night_rejected": sum(decision == "rejected" for decision, _ in decided),
                "night_reviewers": reviewers, "review": review})
        rows.sort(key=lambda r: (-RANK[r["score"]], r["setting_key"]))
        groups.append({"profile": profile, "title": title, "table": TABLE_OF[profile], "settings": rows})
    return groups


def test_the_plain_reading_says_what_the_rows_were_made_for() -> None:
    crires, crires_plus = expected_board()
    by_key = {row["setting_key"]: row for row in crires["settings"]}
    assert [row["setting_key"] for row in crires["settings"]] == [A, D, B, P, C]  # fail, warn, ok, none; then name
    assert by_key[A]["set_id"] == "a6" and by_key[A]["score"] == "fail" and by_key[A]["last_good"]["set_id"] == "a1"
    assert by_key[A]["days_since_good"] == pytest.approx(4.0) and by_key[A]["review"] == "1 of 2 reviewed"
    assert by_key[B]["days_since_good"] == 0.0 and by_key[B]["review"] == "reviewed by bob, carl"
    assert by_key[C]["score"] is None and by_key[C]["last_good"] is None and by_key[C]["review"] == "not reviewed"
    assert [(row["setting_key"], row["score"], row["set_id"]) for row in crires_plus["settings"]] == [(P, "fail", "p2")]


# --- the board on both databases ----------------------------------------------------------------------------------

def client_for(tmp_path: Path, db_url: str) -> tuple[FlaskClient, Engine]:
    engine = connect(db_url)
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    return create_app(settings, engine, None).test_client(), engine


def board_rows(page: str) -> dict[str, str]:
    """The HTML of each board row by its setting key."""
    return dict(re.findall(r'<tr data-setting="([^"]+)">(.*?)</tr>', page, re.S))


def test_the_board_answers_the_plain_reading(tmp_path: Path, db_url: str) -> None:
    client, engine = client_for(tmp_path, db_url)
    write_hand_sets(engine)
    answer = client.get("/api/board").get_json()
    expected = expected_board()
    for group, wanted in zip(answer, expected, strict=True):
        for row in (*group["settings"], *wanted["settings"]):
            row["days_since_good"] = None if row["days_since_good"] is None else round(row["days_since_good"], 6)
    assert answer == expected
    page = client.get("/").get_data(as_text=True)
    assert page.index("<h1>Board</h1>") < page.index("<h1>Nights</h1>")
    assert page.index('id="board-crires_flat"') < page.index('id="board-criresp_flat"')
    crires_rows = board_rows(page[:page.index('id="board-criresp_flat"')])
    assert list(crires_rows) == [row["setting_key"] for row in expected[0]["settings"]]
    for row in expected[0]["settings"]:
        html = crires_rows[row["setting_key"]]
        assert f'class="score score-{row["score"] or "none"}"' in html
        assert f'href="/sets/{row["set_id"]}"' in html and f'href="/nights/{row["night"]}"' in html
        assert row["review"] in html
        if row["last_good"] is None:
            assert "no good set" in html
        else:
            assert f'{row["days_since_good"]:.0f} d' in html and f'href="/sets/{row["last_good"]["set_id"]}"' in html
    engine.dispose()


def test_an_empty_board(tmp_path: Path, sqlite_url: str) -> None:
    client, engine = client_for(tmp_path, sqlite_url)
    assert client.get("/api/board").get_json() == []
    assert "No QC1 rows yet." in client.get("/").get_data(as_text=True)
    engine.dispose()


# --- in Chromium --------------------------------------------------------------------------------------------------

COLOURS = {"ok": "rgb(26, 127, 55)", "warn": "rgb(227, 160, 8)", "fail": "rgb(198, 40, 40)",
           "none": "rgb(140, 149, 159)"}
"""Background of each badge (macros.html score_badge, style in base.html): green, amber, red, grey."""


@pytest.fixture()
def board_page(chromium, tmp_path: Path, sqlite_url: str) -> Iterator:  # noqa: ANN001, F811
    engine = connect(sqlite_url)
    write_hand_sets(engine)
    settings = Settings(db_url=sqlite_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    yield from open_dashboard(chromium, settings, engine, None)
    engine.dispose()


def test_the_board_in_chromium(board_page) -> None:  # noqa: ANN001
    page = board_page
    page.goto("/")
    SCREENS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENS / "board.png"), full_page=True)
    crires = page.locator("#board-crires_flat tr[data-setting]")
    assert crires.evaluate_all("rows => rows.map(r => r.dataset.setting)") == [A, D, B, P, C]
    for key, score in ((A, "fail"), (D, "warn"), (B, "ok"), (C, "none")):
        badge = page.locator(f'#board-crires_flat tr[data-setting="{key}"] .score')
        assert badge.inner_text() == score
        assert badge.evaluate("b => getComputedStyle(b).backgroundColor") == COLOURS[score]
    row_a = page.locator(f'#board-crires_flat tr[data-setting="{A}"]')
    assert row_a.locator("td.review").inner_text() == "1 of 2 reviewed · 1 rejected"
    assert row_a.locator("td.since").inner_text() == "4 d · 2010-05-01"
    assert "last good set" in (row_a.locator("td.since").get_attribute("title") or "")
    row_a.locator("a.set").click()
    page.wait_for_url("**/sets/a6")
    assert page.locator("h1").inner_text().startswith("Set a6")
