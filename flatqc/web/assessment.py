"""Scores and reviews of sets as the night page, the set page and their API show them (contract 9).

Read for many sets at once: one query for their ``scores`` rows (index ``ix_scores_set``), one for the decisions in
force and one for the review history (``ix_reviews_set``), whatever the number of sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from flatqc.db import scores
from flatqc.lifecycle import reviews
from qc.numbers import format_number
from qc.scores import RANK, Score, worst_text
from qc.thresholds import ThresholdKind

WORST_SHOWN = 5
"""Warn and fail values listed per set on the night page (the API lists them all)."""


def review_counts(states: Iterable[str]) -> dict[str, int]:
    """How many of ``states`` (review states of processed sets) are accepted, rejected and not reviewed."""
    listed = list(states)
    return {state: listed.count(state) for state in (*(d.value for d in reviews.Decision), reviews.NOT_REVIEWED)}


def note(detail: Mapping[str, Any]) -> str:
    """What one ``scores`` row was scored against, as the tooltip of its cell: ``fixed [200, 950]`` or
    ``statistical: 517.2 ± 4.1 (30 points), warn band [504.9, 529.5]`` (spread = 1.4826 × MAD)."""
    low, high = format_number(detail["low"]), format_number(detail["high"])
    if detail["kind"] == ThresholdKind.FIXED:
        return f"fixed [{low if detail['low'] is not None else '−∞'}, {high if detail['high'] is not None else '∞'}]"
    if detail["n_points"] is None:
        return "statistical: not scored, too little history"
    return (f"statistical: {format_number(detail['centre'])} ± {format_number(detail['spread'])} "
            f"({detail['n_points']} points), warn band [{low}, {high}]")


def bounds(detail: Mapping[str, Any]) -> str:
    """The bounds one ``scores`` row was scored against, short: ``band 480–530`` (statistical: the warning band),
    ``limits 200–950``, ``limit ≥ 250`` (fixed)."""
    low, high = format_number(detail["low"]), format_number(detail["high"])
    if detail["kind"] == ThresholdKind.STATISTICAL:
        return f"band {low}–{high}"
    if detail["low"] is None:
        return f"limit ≤ {high}"
    if detail["high"] is None:
        return f"limit ≥ {low}"
    return f"limits {low}–{high}"


def line(detail: Mapping[str, Any]) -> str:
    """One scored value as a line: ``det 2 mean_flux 412.3 fail (band 480–530)``."""
    return (f"det {detail['detector']} {detail['parameter']} {format_number(detail['value'])} {detail['score']} "
            f"({bounds(detail)})")


def worst_values(details: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The warn and fail ones of a set's ``scores`` rows, fail first (then by detector and parameter), each with
    its ``text`` (:func:`line`) and ``bounds``."""
    bad = [d for d in details if d["score"] in (Score.WARN, Score.FAIL)]
    bad.sort(key=lambda d: (-RANK[Score(d["score"])], d["detector"], d["parameter"], d["kind"]))
    return [dict(d) | {"text": line(d), "bounds": bounds(d)} for d in bad]


def cell_notes(details: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``{"<parameter>/<detector>": text}`` of a set's ``scores`` rows: each :func:`note` with the score it gave
    (``fixed [200, 950]: ok``); a parameter scored by a fixed and a statistical threshold gets both, joined by "; "."""
    notes: dict[str, list[str]] = {}
    for d in details:
        scored = f": {d['score']}" if d["score"] else ": no value" if d["value"] is None else ""
        notes.setdefault(f"{d['parameter']}/{d['detector']}", []).append(note(d) + scored)
    return {cell: "; ".join(texts) for cell, texts in notes.items()}


@dataclass(frozen=True)
class Assessments:
    """The ``scores`` rows, decisions in force and review histories of some sets, by set id."""

    details: dict[str, list[dict[str, Any]]]
    in_force: dict[str, reviews.Review]
    history: dict[str, list[reviews.Review]]

    def of(self, set_id: str, qc1: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """What the pages and the API add to a set: ``score`` (the worst of its QC1 rows' ``score``), the warn and
        fail values (``worst_scores``), the review in force (``review``, None: not reviewed), ``review_state``
        (accepted, rejected or "not reviewed") and every decision, newest first (``reviews``)."""
        decision = self.in_force.get(set_id)
        return {"score": worst_text(row.get("score") for row in qc1),
                "worst_scores": worst_values(self.details.get(set_id, [])),
                "review": asdict(decision) if decision else None,
                "review_state": decision.decision.value if decision else reviews.NOT_REVIEWED,
                "reviews": [asdict(r) for r in self.history.get(set_id, [])]}


def read(conn: Connection, set_ids: Sequence[str], bad_only: bool = False) -> Assessments:
    """The assessments of ``set_ids`` in three indexed queries; ``bad_only``: only the warn and fail ``scores``
    rows (all the night page lists)."""
    query = select(scores).where(scores.c.set_id.in_(list(set_ids))).order_by(scores.c.id)
    if bad_only:
        query = query.where(scores.c.score.in_((Score.WARN.value, Score.FAIL.value)))
    details: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(query).mappings():
        details.setdefault(row["set_id"], []).append(dict(row))
    return Assessments(details, reviews.in_force(conn, set_ids), reviews.histories(conn, set_ids))
