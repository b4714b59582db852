"""QC1 browser and export: ``/qc1``, ``/qc1.csv``, ``/api/qc1``, ``/api/qc1/columns`` and ``flatqc export`` against
rows read back with plain SQL, on SQLite and PostgreSQL; the page's filters, sorting and download in Chromium."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from bench.history import write_history
from flatqc.cli import main
from flatqc.db import connect, crires_flat
from flatqc.lifecycle.reviews import decide
from flatqc.settings import Settings
from flatqc.web.app import create_app
from qc.parameters import units as units_of
from qc.profiles import CRIRES
from tests.test_web import ARTIFACTS, chromium, open_dashboard  # noqa: F401 - chromium: the fixture

SETTING, DETECTOR, FROM, TO = "1090.400_25.000_Halogen", 3, "2006-04-03", "2006-04-12"
ODD_NAME = 'flats, "odd"\nnight é.fits'
"""A master file name a CSV must quote (comma, quotes, line break) and encode (UTF-8)."""
JSON_COLUMNS = ("raw_files", "raw_sha256")


@pytest.fixture()
def filled(db_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A ledger of 60 generated sets (240 QC1 rows over 20 nights); the first row of the filter has an odd master
    name, two raw files and a NaN mean_flux (stored as NULL by SQLite). Rows are scored ok, warn or fail by turns
    (every fourth not scored); of the filter's sets the first is accepted (after a rejection), the second rejected
    (after an acceptance), the third rejected."""
    engine = connect(db_url)
    write_history(engine, 60)
    with engine.begin() as conn:
        chosen = conn.execute(text("SELECT DISTINCT set_id, night FROM crires_flat WHERE night >= :f AND "
                                   "setting_key = :k ORDER BY night, set_id"), {"f": FROM, "k": SETTING}).scalars()
        first, second, third = list(chosen)[:3]
        conn.execute(update(crires_flat).where(crires_flat.c.set_id == first, crires_flat.c.detector == DETECTOR)
                     .values(master_file=ODD_NAME, raw_files=["a.fits", "b é.fits"], mean_flux=float("nan")))
        conn.execute(text("UPDATE crires_flat SET score = CASE id % 4 WHEN 0 THEN 'ok' WHEN 1 THEN 'warn' "
                          "WHEN 2 THEN 'fail' END"))
        for set_ids, decision in (([first, second], "rejected"), ([first], "accepted"), ([second, third],
                                                                                           "rejected")):
            decide(conn, set_ids, decision, "qc scientist")
    settings = Settings(db_url=db_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    yield {"engine": engine, "url": db_url, "settings": settings,
           "client": create_app(settings, engine, None).test_client()}
    engine.dispose()


def sql_rows(engine: Engine, where: str = "", **params: Any) -> tuple[list[str], list[tuple]]:
    """Column names (but ``id``) and rows of crires_flat with the review decision in force on their set (``review``)
    read with plain SQL, in night, set_id, detector order."""
    with engine.connect() as conn:
        result = conn.execute(text(
            "SELECT * FROM (SELECT f.*, r.decision AS review FROM crires_flat f LEFT JOIN reviews r "
            f"ON r.set_id = f.set_id AND r.replaced_by IS NULL) AS q {where} ORDER BY night, set_id, detector"),
            params)
        names = list(result.keys())
        rows = [tuple(v for n, v in zip(names, row, strict=True) if n != "id") for row in result]
    return [n for n in names if n != "id"], rows


FILTER_SQL = "WHERE night >= :f AND night <= :t AND setting_key = :k AND detector = :d"
FILTER_ARGS = {"f": FROM, "t": TO, "k": SETTING, "d": DETECTOR}
FILTER_QUERY = f"from={FROM}&to={TO}&setting={SETTING}&detector={DETECTOR}"


def native(name: str, value: Any) -> Any:
    """A value as the driver returned it, made comparable: NaN as None, SQLite's JSON text and time text parsed,
    its 0/1 booleans as booleans."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if name in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    if name == "processed_at" and isinstance(value, str):
        return datetime.fromisoformat(value)
    if name == "certified" and value is not None:
        return bool(value)
    return value


def same_cell(cell: str, value: Any) -> bool:
    """Whether a CSV cell holds ``value`` (a :func:`native` value)."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, datetime):
        return datetime.fromisoformat(cell.removesuffix("Z")) == value
    if isinstance(value, list):
        return json.loads(cell) == value
    if isinstance(value, float | int):
        return type(value)(cell) == value
    return cell == value


def same_json(item: Any, value: Any) -> bool:
    """Whether a JSON value holds ``value`` (a :func:`native` value); times are ISO 8601 UTC strings."""
    if isinstance(value, datetime):
        return item.endswith("Z") and datetime.fromisoformat(item.removesuffix("Z")) == value
    return item == value and type(item) is type(value)


def test_csv_and_json_downloads_are_the_database_rows(filled: dict[str, Any]) -> None:
    names, rows = sql_rows(filled["engine"], FILTER_SQL, **FILTER_ARGS)
    assert len(rows) >= 5 and ODD_NAME in rows[0]
    client: FlaskClient = filled["client"]
    answer = client.get(f"/qc1.csv?{FILTER_QUERY}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv" and answer.is_streamed
    assert answer.headers["Content-Disposition"] == f'attachment; filename="crires_flat_{FROM}_{TO}.csv"'
    table = list(csv.reader(io.StringIO(answer.get_data(as_text=True), newline="")))
    header = table[0]  # the table's column order; a migrated database keeps added columns at its end
    assert sorted(header) == sorted(names) and len(table) == len(rows) + 1
    for line, row in zip(table[1:], rows, strict=True):
        by_name = dict(zip(names, row, strict=True))
        assert all(same_cell(cell, native(n, by_name[n])) for n, cell in zip(header, line, strict=True)), line
    answer = client.get(f"/api/qc1?{FILTER_QUERY}")
    assert answer.status_code == 200 and answer.is_json and answer.is_streamed
    objects = answer.get_json()
    assert [list(o) for o in objects] == [header] * len(rows)
    for item, row in zip(objects, rows, strict=True):
        assert all(same_json(item[n], native(n, v)) for n, v in zip(names, row, strict=True)), item
    assert objects[0]["master_file"] == ODD_NAME and objects[0]["mean_flux"] is None


def test_an_empty_selection_and_the_other_profile(filled: dict[str, Any]) -> None:
    client: FlaskClient = filled["client"]
    header = client.get("/qc1.csv?from=2030-01-01").get_data(as_text=True)
    assert header.count("\n") == 1 and header.startswith("set_id,version,night,")
    assert client.get("/api/qc1?from=2030-01-01").get_json() == []
    plus = client.get("/qc1.csv?profile=criresp_flat").get_data(as_text=True).splitlines()[0].split(",")
    assert {"bpm_dark", "bpm_edge", "wlen_id", "decker"} <= set(plus)
    assert client.get("/api/qc1?profile=crires%2B").get_json() == []


def test_verdict_filter_and_all_nights(filled: dict[str, Any]) -> None:
    _, failed = sql_rows(filled["engine"], "WHERE verdict = 'failed'")
    names, everything = sql_rows(filled["engine"])
    set_id, detector = names.index("set_id"), names.index("detector")
    client: FlaskClient = filled["client"]
    assert len(client.get("/api/qc1?verdict=failed").get_json()) == len(failed)
    both = client.get("/api/qc1?verdict=failed&verdict=not_assessable").get_json()
    assert [(r["set_id"], r["detector"]) for r in both] == [(r[set_id], r[detector]) for r in everything]


@pytest.mark.parametrize(("query", "where"), [
    ("score=fail", "score = 'fail'"),
    ("score=ok&score=warn", "score IN ('ok', 'warn')"),
    ("score=none", "score IS NULL"),
    ("review=accepted", "review = 'accepted'"),
    ("review=rejected&score=fail", "review = 'rejected' AND score = 'fail'"),
    ("review=none", "review IS NULL"),
    ("review=none&review=accepted", "(review IS NULL OR review = 'accepted')"),
])
def test_score_and_review_filters_select_what_sql_selects(filled: dict[str, Any], query: str, where: str) -> None:
    names, rows = sql_rows(filled["engine"], f"WHERE {where}")
    assert rows, where
    got = filled["client"].get(f"/api/qc1?{query}").get_json()
    key = names.index("set_id"), names.index("detector"), names.index("review")
    assert [(r["set_id"], r["detector"], r["review"]) for r in got] == [tuple(row[i] for i in key) for row in rows]
    html = filled["client"].get(f"/qc1?{query}&per_page=1000").get_data(as_text=True)
    assert f"<b>{len(rows)}</b> rows" in html


def test_the_cli_filters_on_score_and_review(filled: dict[str, Any]) -> None:
    web = filled["client"].get("/qc1.csv?review=rejected&review=none&score=warn").get_data()
    args = ["export", "--db", filled["url"], "--from", "2006-01-01", "--to", "2007-01-01", "--review", "rejected",
            "--review", "none", "--score", "warn"]
    shown = CliRunner().invoke(main, args, catch_exceptions=False)
    assert shown.exit_code == 0 and shown.stdout_bytes == web and web.count(b"\n") > 1
    refused = CliRunner().invoke(main, [*args, "--review", "approved"])
    assert refused.exit_code == 2 and "review must be one of accepted, rejected, none, not 'approved'" in refused.stderr


def test_the_cli_writes_the_web_export(filled: dict[str, Any], tmp_path: Path) -> None:
    client: FlaskClient = filled["client"]
    for kind, path in (("csv", f"/qc1.csv?{FILTER_QUERY}"), ("json", f"/api/qc1?{FILTER_QUERY}")):
        web = client.get(path).get_data()
        args = ["export", "--db", filled["url"], "--from", FROM, "--to", TO, "--setting", SETTING, "--detector",
                str(DETECTOR), "--format", kind]
        shown = CliRunner().invoke(main, args, catch_exceptions=False)
        assert shown.exit_code == 0 and shown.stdout_bytes == web
        out = tmp_path / f"qc1.{kind}"
        written = CliRunner().invoke(main, [*args, "--out", str(out)], catch_exceptions=False)
        assert written.exit_code == 0 and out.read_bytes() == web
        assert f"rows of crires_flat ({FROM}..{TO}) written to {out}" in written.stderr


def test_the_cli_refuses_unusable_filters(filled: dict[str, Any]) -> None:
    run = CliRunner().invoke(main, ["export", "--db", filled["url"], "--from", "2006-04-02", "--to", "2006-04-01"])
    assert run.exit_code == 2 and "from (2006-04-02) is after to (2006-04-01)" in run.stderr
    run = CliRunner().invoke(main, ["export", "--db", filled["url"], "--from", "2006-04-02", "--to", "2006-04-03",
                                    "--profile", "harps"])
    assert run.exit_code == 2 and "profile must be one of crires, crires+" in run.stderr
    run = CliRunner().invoke(main, ["export", "--from", "2006-04-31", "--to", "2006-05-01"])
    assert run.exit_code == 2 and "2006-04-31" in run.stderr


@pytest.mark.parametrize(("query", "message"), [
    ("from=2010-5-1", "from must be a night as YYYY-MM-DD, not '2010-5-1'"),
    ("to=2010-02-30", "to must be a night as YYYY-MM-DD, not '2010-02-30'"),
    ("from=2010-05-02&to=2010-05-01", "from (2010-05-02) is after to (2010-05-01)"),
    ("detector=three", "detector must be a number, not 'three'"),
    ("profile=harps", "profile must be one of crires, crires+ (or a table: crires_flat, criresp_flat), not 'harps'"),
    ("sort=master_file", "sort must be a column of crires_flat shown on the page, not 'master_file'"),
    ("sort=mean_flux;drop table sets", "sort must be a column of crires_flat shown on the page, "
                                       "not 'mean_flux;drop table sets'"),
    ("dir=up", "dir must be asc or desc, not 'up'"),
    ("score=bad", "score must be one of ok, warn, fail, none, not 'bad'"),
    ("score=ok&score=OK", "score must be one of ok, warn, fail, none, not 'OK'"),
    ("review=maybe", "review must be one of accepted, rejected, none, not 'maybe'"),
    ("verdict=passed&verdict=pass", "verdict must be one of passed, failed, not_assessable, not 'pass'"),
])
def test_unusable_filters_are_refused_with_the_reason(query: str, message: str, tmp_path: Path,
                                                      sqlite_url: str) -> None:
    settings = Settings(db_url=sqlite_url, qc_output=tmp_path / "qc", run_dir=tmp_path / "run")
    client = create_app(settings, connect(sqlite_url), None).test_client()
    for path in ("/qc1", "/qc1.csv"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == 400 and str(escape(message)) in answer.get_data(as_text=True)
    answer = client.get(f"/api/qc1?{query}")
    assert answer.status_code == 400 and answer.get_json()["message"] == message
    assert client.get("/qc1?page=0").status_code == 400 and client.get("/qc1?per_page=5000").status_code == 400


SET_LINK = re.compile(r'<td class="l"><a href="/sets/([^"]+)">')


def test_pages_sorted_by_a_column_are_the_sorted_rows(filled: dict[str, Any]) -> None:
    client: FlaskClient = filled["client"]
    with filled["engine"].connect() as conn:
        expected = conn.execute(text(
            "SELECT set_id FROM crires_flat WHERE night <= :t ORDER BY rms_master DESC, night, set_id, detector"),
            {"t": TO}).scalars().all()
    assert [r["set_id"] for r in client.get(f"/api/qc1?to={TO}&sort=rms_master&dir=desc").get_json()] == expected
    seen: list[str] = []
    for page in range(1, 100):
        html = client.get(f"/qc1?to={TO}&sort=rms_master&dir=desc&per_page=25&page={page}").get_data(as_text=True)
        seen += SET_LINK.findall(html)
        if 'rel="next"' not in html:
            break
    assert seen == expected and f"page {page} of {page}" in html and f"<b>{len(expected)}</b> rows" in html


def test_data_dictionary_names_every_column_with_units(filled: dict[str, Any]) -> None:
    client: FlaskClient = filled["client"]
    header = client.get("/qc1.csv?from=2030-01-01").get_data(as_text=True).strip().split(",")
    columns = client.get("/api/qc1/columns").get_json()
    assert [c["name"] for c in columns] == header
    units = {c["name"]: c["unit"] for c in columns}
    assert units == units_of(CRIRES) | {"review": ""} and units["dit"] == "s"
    assert all(c["description"] and c["type"] for c in columns)
    plus = {c["name"]: c for c in client.get("/api/qc1/columns?profile=crires%2B").get_json()}
    assert plus["bpm_outoforder"]["unit"] == "px" and plus["bpm_outoforder"]["type"] == "integer"
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert all(f"| `{name}` |" in readme for name in {*header, *plus})


@pytest.fixture()
def qc1_page(chromium, filled: dict[str, Any]) -> Iterator:  # noqa: ANN001, F811
    yield from open_dashboard(chromium, filled["settings"], filled["engine"], None)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_filter_sort_and_download_in_chromium(qc1_page, filled: dict[str, Any], tmp_path: Path) -> None:  # noqa: ANN001
    page = qc1_page
    page.goto("/")
    page.click("nav >> text=QC1")
    page.fill("input[name=from]", FROM)
    page.fill("input[name=to]", TO)
    page.select_option("select[name=setting]", SETTING)
    page.select_option("select[name=detector]", str(DETECTOR))
    page.click("#qc1-filters button")
    page.wait_for_url(f"**detector={DETECTOR}**")
    names, rows = sql_rows(filled["engine"], FILTER_SQL, **FILTER_ARGS)
    assert page.locator("#qc1 tr").count() == len(rows) + 1
    page.click("a.sort[data-column=mean_level]")
    page.click("a.sort[data-column=mean_level]")  # again: descending
    page.wait_for_url("**dir=desc**")
    shown = page.locator("#qc1 th").all_inner_texts()
    column = shown.index("mean_level ▼") + 1
    levels = [float(t) for t in page.locator(f"#qc1 tr td:nth-child({column})").all_inner_texts()]
    assert levels == sorted(levels, reverse=True) and len(levels) == len(rows)
    page.screenshot(path=str(ARTIFACTS / "qc1.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#download-csv")
    saved = tmp_path / "download.csv"
    download.value.save_as(saved)
    lines = list(csv.DictReader(io.StringIO(saved.read_text(), newline="")))
    level = names.index("mean_level")
    assert len(lines) == len(rows) and {line["detector"] for line in lines} == {str(DETECTOR)}
    assert [float(line["mean_level"]) for line in lines] == sorted((r[level] for r in rows), reverse=True)
    page.click(f"#qc1 a[href='/sets/{lines[0]['set_id']}']")
    assert lines[0]["set_id"] in page.locator("h1").inner_text()
