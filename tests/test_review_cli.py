"""``flatqc review`` on SQLite and PostgreSQL: accept, reject, the history of decisions, a whole night at once,
refusals that change nothing, and a set rejected in review leaving the last good set of a later set processed
again (the decisions are checked in the ``reviews`` table with plain SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.history import write_history
from flatqc.cli import main
from flatqc.db import connect
from tests.conftest import run_process
from tests.service_helpers import chosen


@pytest.fixture()
def ledger(db_url: str) -> Iterator[dict[str, Any]]:
    """A generated history of 12 sets over 4 nights (3 a night)."""
    engine = connect(db_url)
    write_history(engine, 12)
    with engine.connect() as conn:
        nights = {night: list(ids) for night, ids in _by_night(conn.execute(text(
            "SELECT DISTINCT night, set_id FROM crires_flat ORDER BY night, set_id")).all()).items()}
    yield {"engine": engine, "url": db_url, "nights": nights}
    engine.dispose()


def _by_night(pairs: list[Any]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for night, set_id in pairs:
        grouped.setdefault(night, []).append(set_id)
    return grouped


def review(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["review", *args, "--db", url], env={"FLATQC_CONFIG": None})


def decisions(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id, set_id, decision, reviewer, comment, replaced_by FROM reviews "
                                      "ORDER BY id")))


def test_reject_then_accept_keeps_both_decisions(ledger: dict[str, Any]) -> None:
    set_id = ledger["nights"][min(ledger["nights"])][0]
    first = review(ledger["url"], set_id, "--reject", "--by", "Ann [QC]", "--comment", "lamp [flicker]")
    assert first.exit_code == 0, first.output
    assert f"set {set_id}: not reviewed -> rejected" in first.stdout
    assert "1 set rejected by Ann [QC]: lamp [flicker]" in first.stdout
    second = review(ledger["url"], set_id, "--accept", "--by", "bob")
    assert second.exit_code == 0 and f"set {set_id}: rejected -> accepted" in second.stdout
    (one, two) = decisions(ledger["engine"])
    assert (one.set_id, one.decision, one.reviewer, one.comment, one.replaced_by) == (
        set_id, "rejected", "Ann [QC]", "lamp [flicker]", two.id)
    assert (two.set_id, two.decision, two.reviewer, two.comment, two.replaced_by) == (
        set_id, "accepted", "bob", None, None)
    shown = review(ledger["url"], set_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert f"review of set {set_id}: accepted" in lines[0]
    newest = next(i for i, line in enumerate(lines) if f"│ {two.id} " in line)
    older = next(i for i, line in enumerate(lines) if f"│ {one.id} " in line)
    assert newest < older and "in force" in lines[newest] and "bob" in lines[newest]
    assert "Ann [QC]" in lines[older] and "lamp [flicker]" in lines[older] and f"#{two.id}" in lines[older]


def test_a_whole_night_at_once(ledger: dict[str, Any]) -> None:
    night, other = sorted(ledger["nights"])[1:3]
    done = review(ledger["url"], "--night", night, "--reject", "--by", "ann", "--comment", "clouds of dust")
    assert done.exit_code == 0, done.output
    expected = ledger["nights"][night]
    assert f"{len(expected)} sets rejected by ann: clouds of dust" in done.stdout
    made = decisions(ledger["engine"])
    assert sorted(d.set_id for d in made) == sorted(expected) and {d.decision for d in made} == {"rejected"}
    again = review(ledger["url"], "--night", night, "--accept", "--by", "bob")
    assert again.exit_code == 0 and f"{len(expected)} sets accepted by bob" in again.stdout
    in_force = [d for d in decisions(ledger["engine"]) if d.replaced_by is None]
    assert sorted(d.set_id for d in in_force) == sorted(expected) and {d.decision for d in in_force} == {"accepted"}
    listed = review(ledger["url"], "--night", night).stdout
    assert all(f"{s} │ accepted │ bob" in listed for s in expected)
    untouched = review(ledger["url"], "--night", other).stdout
    assert all(f"{s} │ not reviewed" in untouched for s in ledger["nights"][other])


def test_the_reviewer_is_the_login_name_unless_given(ledger: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "night-astronomer")
    set_id = ledger["nights"][max(ledger["nights"])][0]
    assert review(ledger["url"], set_id, "--accept").exit_code == 0
    assert [d.reviewer for d in decisions(ledger["engine"])] == ["night-astronomer"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["nosuchset", "--accept"], 1, "no QC1 rows for set(s) nosuchset: only processed sets are reviewed"),
    (["{known}", "nosuchset", "--reject"], 1, "no QC1 rows for set(s) nosuchset"),
    (["{known}", "--accept", "--by", "  "], 1, "a review decision needs the reviewer's name"),
    (["--night", "2031-01-01", "--reject"], 1, "no set of the night 2031-01-01 has QC1 rows"),
    (["nosuchset"], 1, "no QC1 rows for set nosuchset"),
    (["{known}", "--accept", "--reject"], 2, "--accept or --reject, not both"),
    (["--accept"], 2, "name the sets: SET_ID... or --night D (not both)"),
    (["{known}", "--night", "2006-04-02", "--accept"], 2, "name the sets: SET_ID... or --night D (not both)"),
    (["{known}", "--comment", "why"], 2, "--comment goes with --accept or --reject"),
    (["--night", "2006-04-31", "--accept"], 2, "'2006-04-31' does not match the format '%Y-%m-%d'"),
])
def test_a_refused_decision_says_why_and_changes_nothing(ledger: dict[str, Any], args: list[str], code: int,
                                                         message: str) -> None:
    known = ledger["nights"][min(ledger["nights"])][0]
    done = review(ledger["url"], *(a.format(known=known) for a in args))
    assert done.exit_code == code and message in done.stderr and "Traceback" not in done.output, done.output
    assert decisions(ledger["engine"]) == []


def test_a_set_rejected_in_review_is_no_last_good_set(synth_night: Path, db_url: str, tmp_path: Path) -> None:
    """Two sets of one setting: the later one's last good set is the earlier one until a reviewer rejects it;
    processed again, the later set has none (and the decision outlives the reprocessing)."""
    earlier, later = chosen(synth_night, "single_flat"), chosen(synth_night, "overexposed")
    products = [synth_night / p for s in (earlier, later) for p in (s.master, s.bpm)]

    def last_good() -> str | None:
        engine = connect(db_url)
        with engine.connect() as conn:
            found = set(conn.execute(text("SELECT prev_set_id FROM crires_flat WHERE set_id = :s"),
                                     {"s": later.set_id}).scalars())
        engine.dispose()
        assert len(found) == 1
        return found.pop()

    report = run_process(synth_night, db_url, tmp_path / "qc", *products)
    assert [s["set_id"] for s in report["sets"]] == [earlier.set_id, later.set_id]
    assert last_good() == earlier.set_id
    assert review(db_url, earlier.set_id, "--reject", "--by", "ann").exit_code == 0
    run_process(synth_night, db_url, tmp_path / "qc", *products)
    assert last_good() is None
    shown = review(db_url, earlier.set_id)
    assert f"review of set {earlier.set_id}: rejected" in shown.stdout
