"""Scores and review on the night page, the set page and the API (contract 9): badges from hand-made rows, review
decisions from forms and JSON with their refusals, CSRF and the token off loopback, indexed queries not per set, and
a night reviewed in bulk in a real headless Chromium."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from flatqc.db import connect, crires_flat, reviews, scores, sets
from flatqc.lifecycle.reviews import decide
from flatqc.settings import Settings
from flatqc.web.app import create_app
from tests.conftest import ProcessedNight, copy_processed
from tests.test_web import ARTIFACTS, chromium, open_dashboard  # noqa: F401 - chromium: the fixture, shared

NIGHT, OTHER_NIGHT = "2010-05-12", "2010-05-13"
KEY = "1090.400_25.000_Halogen"
FAILING, PASSING, UNSCORED, INCOMPLETE, ELSEWHERE = ("a000000000000001", "b000000000000002", "c000000000000003",
                                                     "d000000000000004", "e000000000000005")

STAT = {"kind": "statistical", "low": 490.0, "high": 520.0, "centre": 505.0, "spread": 5.0, "n_points": 12}
"""A statistical band: centre 505, spread 5, warning band 505 ∓ 3 × 5."""
SCORE_ROWS = {  # set -> (detector, parameter, score, value, what it was scored against), in the order written
    FAILING: [
        (1, "mean_flux", "fail", 412.3, STAT),
        (1, "median_snr", "ok", 300.0, {"kind": "fixed", "low": 250.0}),
        (2, "mean_flux", "ok", 484.0, {"kind": "fixed", "low": 100.0, "high": 800.0}),
        (2, "mean_flux", "warn", 484.0, STAT),
        (2, "median_snr", "fail", 180.0, {"kind": "fixed", "low": 250.0}),
        (2, "rms_master", None, 0.09, {"kind": "statistical"}),  # too little history
        (2, "max_flux", "warn", 12000.0, {"kind": "fixed", "high": 10000.0}),
    ],
    PASSING: [(1, "mean_flux", "ok", 500.0, STAT), (2, "mean_flux", "ok", 506.0, STAT)],
    ELSEWHERE: [(1, "mean_flux", "ok", 501.0, STAT)],
}
ROW_SCORES = {  # set -> detector -> its QC1 row's score columns, as the scoring wrote them with the rows above
    FAILING: {1: {"score_mean_flux": "fail", "score_median_snr": "ok", "score": "fail"},
              2: {"score_mean_flux": "warn", "score_median_snr": "fail", "score_max_flux": "warn", "score": "fail"}},
    PASSING: {1: {"score_mean_flux": "ok", "score": "ok"}, 2: {"score_mean_flux": "ok", "score": "ok"}},
    UNSCORED: {1: {}, 2: {}},
    ELSEWHERE: {1: {"score_mean_flux": "ok", "score": "ok"}},
}
WORST_LINES = [
    "det 1 mean_flux 412.3 fail (band 490–520)",
    "det 2 median_snr 180 fail (limit ≥ 250)",
    "det 2 max_flux 12000 warn (limit ≤ 10000)",
    "det 2 mean_flux 484 warn (band 490–520)",
]
"""The warn and fail values of FAILING as the night page lists them: fail first, then by detector and parameter."""
CELLS = {  # set page of FAILING: (parameter, detector) -> (badge, tooltip); every other cell has no badge
    ("mean_flux", 1): ("fail", "statistical: 505 ± 5 (12 points), warn band [490, 520]: fail"),
    ("median_snr", 1): ("ok", "fixed [250, ∞]: ok"),
    ("mean_flux", 2): ("warn", "fixed [100, 800]: ok; statistical: 505 ± 5 (12 points), warn band [490, 520]: warn"),
    ("median_snr", 2): ("fail", "fixed [250, ∞]: fail"),
    ("rms_master", 2): ("none", "statistical: not scored, too little history"),
    ("max_flux", 2): ("warn", "fixed [−∞, 10000]: warn"),
}


def write_night(engine: Engine, night: str, set_ids: Sequence[str], extra: Sequence[str] = ()) -> None:
    """``set_ids`` processed on ``night`` (QC1 rows of ROW_SCORES, two detectors by default, ``scores`` rows of
    SCORE_ROWS) and the ``extra`` sets without QC1 rows (incomplete)."""
    with engine.begin() as conn:
        for index, set_id in enumerate([*set_ids, *extra]):
            processed = set_id in set_ids
            conn.execute(insert(sets).values(
                set_id=set_id, version=f"v-{set_id}", night=night, profile="crires", setting_key=KEY, raw_type="FLAT",
                n_raw=3, state="done" if processed else "incomplete", verdict="passed" if processed else None,
                pictures="pending" if processed else None))
            for detector, columns in ROW_SCORES.get(set_id, {1: {}, 2: {}}).items() if processed else ():
                conn.execute(insert(crires_flat).values(
                    set_id=set_id, version=f"v-{set_id}", night=night, mjd_obs=55329.1 + index / 100,
                    setting_key=KEY, n_raw=3, raw_type="FLAT", detector=detector, certified=True, verdict="passed",
                    master_file=f"{set_id}.fits", mean_flux=500.0, thresholds_file="built-in", **columns))
            for detector, parameter, score, value, against in SCORE_ROWS.get(set_id, []):
                conn.execute(insert(scores).values(qc1_table="crires_flat", set_id=set_id, detector=detector,
                                                   parameter=parameter, score=score, value=value, **against))


@pytest.fixture()
def site(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """A dashboard (no Redis) over NIGHT (FAILING, PASSING, UNSCORED and INCOMPLETE) and OTHER_NIGHT (ELSEWHERE)."""
    engine = connect(db_url)
    write_night(engine, NIGHT, [FAILING, PASSING, UNSCORED], [INCOMPLETE])
    write_night(engine, OTHER_NIGHT, [ELSEWHERE])
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    return {"settings": settings, "engine": engine, "client": create_app(settings, engine, None).test_client()}


def csrf(client: FlaskClient) -> str:
    """The session's CSRF token (a page is fetched first, which creates it)."""
    client.get(f"/nights/{NIGHT}")
    with client.session_transaction() as session:
        return session["csrf"]


def decisions(engine: Engine) -> list[tuple]:
    """Every ``reviews`` row: (set, decision, reviewer, comment, replaced_by is set), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(reviews).order_by(reviews.c.id)).all()
    return [(r.set_id, r.decision, r.reviewer, r.comment, r.replaced_by is not None) for r in rows]


def badges(fragment: str) -> list[tuple[str, str | None]]:
    """(score, tooltip) of each score badge in an HTML fragment."""
    return [(score, html.unescape(title) if title else None) for score, title in
            re.findall(r'<span class="score score-(\w+)"(?: title="([^"]*)")?>', fragment)]


def set_rows(page: str) -> dict[str, str]:
    """The HTML of each set row of a night page, by set id."""
    return dict(re.findall(r'<section class="setrow" id="set-(\w+)".*?>(.*?)</section>', page, re.S))


def test_night_shows_each_sets_score_review_and_worst_values(site: dict) -> None:
    client = site["client"]
    night = client.get(f"/api/nights/{NIGHT}").get_json()
    assert night["score"] == "fail"
    by_id = {s["set_id"]: s for s in night["sets"]}
    assert {s: by_id[s]["score"] for s in by_id} == {FAILING: "fail", PASSING: "ok", UNSCORED: None,
                                                     INCOMPLETE: None}
    assert [w["text"] for w in by_id[FAILING]["worst_scores"]] == WORST_LINES
    assert by_id[PASSING]["worst_scores"] == [] and by_id[PASSING]["review_state"] == "not reviewed"
    assert night["review_counts"] == {"accepted": 0, "rejected": 0, "not reviewed": 3}
    page = client.get(f"/nights/{NIGHT}").get_data(as_text=True)
    score_line = page[page.index('<p class="night-score">'):]
    assert badges(score_line[:score_line.index("</p>")]) == [("fail", "the worst score of its sets")]
    assert re.sub(r"\s+", " ", score_line[score_line.index("· review"):score_line.index("</p>")]).strip() == \
        "· review: 0 accepted, 0 rejected, 3 not reviewed"
    rows = set_rows(page)
    for set_id, score in ((FAILING, "fail"), (PASSING, "ok"), (UNSCORED, "none")):
        assert badges(rows[set_id][:rows[set_id].index("</h3>")]) == [(score, None)], set_id
        assert "not reviewed" in rows[set_id] and f'value="{set_id}"' in rows[set_id]  # a checkbox
    worst = re.findall(r"<li>det (\d) (\w+) ([\d.]+) (.*?) \((.*?)\)</li>", rows[FAILING])
    assert [f"det {d} {p} {v} {badges(b)[0][0]} ({r})" for d, p, v, b, r in worst] == WORST_LINES
    assert "not reviewed" not in rows[INCOMPLETE] and "set_ids" not in rows[INCOMPLETE]  # cannot be reviewed
    assert "cover sheet not drawn yet" in rows[PASSING] and "not processed" in rows[INCOMPLETE]


def test_set_page_has_a_badge_per_scored_cell_with_what_it_was_scored_against(site: dict) -> None:
    client = site["client"]
    page = client.get(f"/sets/{FAILING}").get_data(as_text=True)
    table = page[page.index('<table class="qc1">'):]
    table = table[:table.index("</table>")]
    found: dict[tuple[str, int], tuple[str, str | None]] = {}
    row_score: list = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        name = re.sub(r"<[^>]+>", "", cells[0]).strip()
        if name == "score":
            row_score = [badges(c) for c in cells[2:]]
            continue
        for detector, cell in enumerate(cells[2:], start=1):
            for badge in badges(cell):
                found[(name, detector)] = badge
    assert found == CELLS
    assert row_score == [[("fail", "the worst score of detector 1")], [("fail", "the worst score of detector 2")]]
    assert badges(page[page.index("<h1>"):page.index("</h1>")]) == [("fail", "the worst score of its QC1 rows")]
    assert "threshold file <b>built-in</b>" in page and "not reviewed" in page
    detail = client.get(f"/api/sets/{FAILING}").get_json()["set"]
    assert detail["score"] == "fail" and detail["review"] is None and detail["reviews"] == []
    assert len(detail["scores"]) == len(SCORE_ROWS[FAILING])
    assert {tuple(c.split("/")): note for c, note in detail["score_notes"].items()} == {
        (p, str(d)): note for (p, d), (_, note) in CELLS.items()}


def test_review_through_the_api(site: dict) -> None:
    client, engine = site["client"], site["engine"]
    headers = {"X-CSRF-Token": csrf(client)}
    answer = client.post(f"/api/sets/{FAILING}/review", headers=headers,
                         json={"decision": "accepted", "reviewer": "ana", "comment": "lamp ok"})
    assert answer.status_code == 201
    (decided,) = answer.get_json()["decided"]
    assert decided["set_id"] == FAILING and decided["review"]["decision"] == "accepted"
    answer = client.post(f"/api/sets/{FAILING}/review", headers=headers,  # a form body works as well
                         data={"decision": "rejected", "reviewer": " bo ", "comment": ""})
    assert answer.status_code == 201 and answer.get_json()["reviewer"] == "bo"
    assert decisions(engine) == [(FAILING, "accepted", "ana", "lamp ok", True),
                                 (FAILING, "rejected", "bo", None, False)]
    detail = client.get(f"/api/sets/{FAILING}").get_json()["set"]
    assert detail["review_state"] == "rejected" and detail["review"]["reviewer"] == "bo"
    assert [(r["decision"], r["reviewer"], r["replaced_by"]) for r in detail["reviews"]] == [
        ("rejected", "bo", None), ("accepted", "ana", detail["review"]["id"])]
    refusals = [  # (path, body, status, words of the message); nothing is written
        (f"/api/sets/{PASSING}/review", {"decision": "accepted", "reviewer": "  "}, 409, "reviewer's name"),
        (f"/api/sets/{INCOMPLETE}/review", {"decision": "accepted", "reviewer": "ana"}, 409, "no QC1 rows"),
        ("/api/sets/f000000000000000/review", {"decision": "accepted", "reviewer": "ana"}, 404, "no set"),
        (f"/api/sets/{PASSING}/review", {"decision": "maybe", "reviewer": "ana"}, 400, "accepted or rejected"),
        (f"/api/sets/{PASSING}/review", {"decision": "accepted", "reviewer": 7}, 400, "reviewer must be text"),
        (f"/api/nights/{NIGHT}/review", {"decision": "accepted", "reviewer": "ana", "set_ids": [ELSEWHERE]}, 409,
         f"not processed sets of night {NIGHT}: {ELSEWHERE}"),
        (f"/api/nights/{NIGHT}/review", {"decision": "accepted", "reviewer": "ana", "set_ids": [INCOMPLETE]}, 409,
         "not processed sets"),
        (f"/api/nights/{NIGHT}/review", {"decision": "accepted", "reviewer": "ana", "set_ids": FAILING}, 400,
         "list of set ids"),
        (f"/api/nights/{NIGHT}/review", {"decision": "accepted", "reviewer": "ana", "set_ids": []}, 400, "non-empty"),
        ("/api/nights/2099-01-01/review", {"decision": "accepted", "reviewer": "ana"}, 404, "no processed set"),
    ]
    for path, body, status, words in refusals:
        answer = client.post(path, headers=headers, json=body)
        assert answer.status_code == status and words in answer.get_json()["message"], (path, body, answer.json)
    assert client.post(f"/api/sets/{PASSING}/review", headers=headers, data="[1]",
                       content_type="application/json").status_code == 400
    assert len(decisions(engine)) == 2
    answer = client.post(f"/api/nights/{NIGHT}/review", headers=headers,  # no set_ids: every processed set
                         json={"decision": "accepted", "reviewer": "cy"})
    assert answer.status_code == 201
    assert sorted(d["set_id"] for d in answer.get_json()["decided"]) == [FAILING, PASSING, UNSCORED]
    night = client.get(f"/api/nights/{NIGHT}").get_json()
    assert night["review_counts"] == {"accepted": 3, "rejected": 0, "not reviewed": 0}
    by_id = {s["set_id"]: s for s in night["sets"]}
    assert [r["reviewer"] for r in by_id[FAILING]["reviews"]] == ["cy", "bo", "ana"]
    assert by_id[INCOMPLETE]["review"] is None and by_id[PASSING]["review"]["reviewer"] == "cy"
    answer = client.post(f"/api/nights/{NIGHT}/review", headers=headers,  # a set named twice is decided once
                         json={"decision": "rejected", "reviewer": "cy", "set_ids": [PASSING, PASSING]})
    assert [d["set_id"] for d in answer.get_json()["decided"]] == [PASSING] and len(decisions(engine)) == 6


def test_review_from_the_pages_ends_with_a_message(site: dict) -> None:
    client, engine = site["client"], site["engine"]
    token = csrf(client)
    form = {"csrf_token": token, "decision": "rejected", "reviewer": "ana", "comment": "fringes",
            "set_ids": [FAILING, UNSCORED]}
    answer = client.post(f"/nights/{NIGHT}/review", data=form)
    assert answer.status_code == 302 and answer.location == f"/nights/{NIGHT}"
    page = client.get(answer.location).get_data(as_text=True)
    assert f"2 sets ({FAILING}, {UNSCORED}) rejected by ana (fringes)." in page
    rows = set_rows(page)
    assert "rejected</span> <span class=\"muted\">by ana" in rows[FAILING] and "not reviewed" in rows[PASSING]
    assert 'value="ana"' in page  # the name is offered again
    for body, words in (({"set_ids": []}, "no set ticked"),
                        ({"reviewer": ""}, "a review decision needs the reviewer&#39;s name")):
        answer = client.post(f"/nights/{NIGHT}/review", data=form | body, follow_redirects=True)
        assert f"Nothing decided: {words}" in answer.get_data(as_text=True)
    answer = client.post(f"/sets/{PASSING}/review", data={"csrf_token": token, "decision": "accepted",
                                                          "reviewer": "bo"}, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert f"Set {PASSING} accepted by bo." in page and re.search(r"<td class=\"l\">bo</td>", page)
    assert decisions(engine) == [(FAILING, "rejected", "ana", "fringes", False),
                                 (UNSCORED, "rejected", "ana", "fringes", False),
                                 (PASSING, "accepted", "bo", None, False)]


def test_reviews_need_csrf_and_off_loopback_the_token(site: dict) -> None:
    settings, engine = site["settings"], site["engine"]
    body = {"decision": "accepted", "reviewer": "ana"}
    client = site["client"]
    assert client.post(f"/sets/{FAILING}/review", data=body).status_code == 400
    assert client.post(f"/api/nights/{NIGHT}/review", json=body).status_code == 400
    assert client.post(f"/api/sets/{FAILING}/review", json=body, headers={"X-Flatqc-Token": "s3cret"}).status_code \
        == 400  # no FLATQC_WEB_TOKEN set: the header means nothing
    exposed = create_app(settings.model_copy(update={"web_host": "0.0.0.0", "web_token": "s3cret"}), engine,
                         None).test_client()
    token = csrf(exposed)
    assert 'name="token"' in exposed.get(f"/sets/{FAILING}").get_data(as_text=True)  # the forms ask for it
    assert exposed.post(f"/sets/{FAILING}/review", data=body | {"csrf_token": token}).status_code == 403
    assert exposed.post(f"/api/sets/{FAILING}/review", json=body, headers={"X-CSRF-Token": token}).status_code == 403
    assert exposed.post(f"/sets/{FAILING}/review", data=body | {"csrf_token": token, "token": "wrong"}).status_code \
        == 403
    assert decisions(engine) == []
    assert exposed.post(f"/sets/{FAILING}/review", data=body | {"csrf_token": token, "token": "s3cret"}).status_code \
        == 302
    # a script's header: the token alone will do (no page of another site can send it); a wrong one will not
    fresh = create_app(settings.model_copy(update={"web_host": "0.0.0.0", "web_token": "s3cret"}), engine,
                       None).test_client()
    assert fresh.post(f"/api/sets/{PASSING}/review", json=body, headers={"X-Flatqc-Token": "s3cret"}).status_code \
        == 201
    for wrong in ("s3cre", "s3crét", ""):
        assert fresh.post(f"/api/sets/{PASSING}/review", json=body,
                          headers={"X-Flatqc-Token": wrong}).status_code == 400, wrong
    assert fresh.post(f"/sets/{PASSING}/review", data=body | {"token": "s3cret"}).status_code == 400  # a form: CSRF
    assert [(s, d) for s, d, *_ in decisions(engine)] == [(FAILING, "accepted"), (PASSING, "accepted")]


def statements_of(engine: Engine, client: FlaskClient, path: str) -> list[tuple[str, Any]]:
    """The SQL statements (with their parameters) that answering ``path`` ran."""
    ran: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        ran.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return ran


def test_night_page_queries_do_not_grow_with_its_sets_and_use_the_indexes(site: dict) -> None:
    engine, client = site["engine"], site["client"]
    many = [f"m{n:015d}" for n in range(30)]
    write_night(engine, "2010-05-20", many)
    with engine.begin() as conn:
        decide(conn, many, "accepted", "x")
    few = statements_of(engine, client, f"/nights/{NIGHT}")
    lots = statements_of(engine, client, "/nights/2010-05-20")
    assert len(lots) == len(few)
    mine = [(s, p) for s, p in lots if re.search(r"\bFROM (scores|reviews)\b", s)]
    assert len(mine) == 3  # the warn and fail scores, the decisions in force, the review history
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # a usable index is then always taken
        for statement, parameters in mine:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(
                ("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement, parameters))
            assert re.search(r"ix_(scores|reviews)_set", plan) and not re.search(r"Seq Scan|SCAN (scores|reviews)",
                                                                                 plan), (statement, plan)


# -- in Chromium ------------------------------------------------------------------------------------------------------

@pytest.fixture()
def reviewed(chromium, processed_night: ProcessedNight, tmp_path: Path) -> Iterator[tuple]:  # noqa: ANN001, F811
    """A page of a dashboard over a copy of the processed synthetic night, and its engine."""
    copy = copy_processed(processed_night, tmp_path / "db")
    settings = Settings(db_url=copy.db_url, qc_output=copy.out, run_dir=tmp_path / "run")
    engine = connect(settings.db_url)
    for page in open_dashboard(chromium, settings, engine, None):
        yield page, engine


def test_a_night_reviewed_in_bulk_in_chromium(reviewed: tuple, processed_night: ProcessedNight) -> None:
    page, engine = reviewed
    night = processed_night.report["sets"][0]["night"]
    processed = sorted(s["set_id"] for s in processed_night.report["sets"])
    page.goto(f"/nights/{night}")
    assert page.locator("section.setrow input.pick").count() == len(processed)
    page.locator("#select-all").check()
    assert page.locator("input.pick:checked").count() == len(processed)
    form = page.locator("#review-form")
    form.locator("input[name=reviewer]").fill("qc scientist")
    form.locator("input[name=comment]").fill("lamp flicker all night")
    form.locator("button:text('Reject')").click()
    page.wait_for_url(f"**/nights/{night}")
    flash = re.fullmatch(r"7 sets \((.*)\) rejected by qc scientist \(lamp flicker all night\)\.",
                         page.locator(".flash").inner_text())
    assert len(processed) == 7 and flash and sorted(flash[1].split(", ")) == processed
    reviewed_rows = page.locator("section.setrow", has=page.locator("input.pick"))
    for text in reviewed_rows.locator(".review-line").all_inner_texts():
        assert text.startswith("review: rejected by qc scientist,") and text.endswith(": “lamp flicker all night”")
    with engine.connect() as conn:
        rows = conn.execute(select(reviews).order_by(reviews.c.set_id)).all()
    assert [(r.set_id, r.night, r.decision, r.reviewer, r.comment, r.replaced_by) for r in rows] == [
        (s, night, "rejected", "qc scientist", "lamp flicker all night", None) for s in processed]
    page.screenshot(path=str(ARTIFACTS / "night_reviewed.png"), full_page=True)
    # two sets accepted again, from the ticked boxes (the name is offered again)
    first, second = processed[:2]
    for set_id in (first, second):
        page.locator(f"#set-{set_id} input.pick").check()
    assert form.locator("input[name=reviewer]").input_value() == "qc scientist"
    form.locator("button:text('Accept')").click()
    page.wait_for_url(f"**/nights/{night}")
    assert page.locator(".flash").inner_text() == f"2 sets ({first}, {second}) accepted by qc scientist."
    states = dict(zip(page.locator("section.setrow").evaluate_all("rows => rows.map(r => r.id.slice(4))"),
                      page.locator("section.setrow").evaluate_all("rows => rows.map(r => r.dataset.review)"),
                      strict=True))
    assert {s: states[s] for s in processed} == {s: "accepted" if s in (first, second) else "rejected"
                                                 for s in processed}
    page.click(f"h3 >> text=set {first}")
    history = page.locator("#review table.reviews tr")
    assert history.count() == 3  # the header and two decisions, newest first
    newest, older = history.nth(1).inner_text(), history.nth(2).inner_text()
    assert "accepted" in newest and "in force" in newest
    assert "rejected" in older and "lamp flicker all night" in older and "#" in older.split("\t")[-1]
    assert page.locator("#review h2").inner_text().startswith("Review: accepted by qc scientist")
    page.screenshot(path=str(ARTIFACTS / "set_reviewed.png"), full_page=True)
