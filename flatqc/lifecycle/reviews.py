"""The review of a set (contract 9, ESO certifyProducts): a person accepts or rejects a set after looking at it::

    not reviewed ──decide──> accepted | rejected ──decide──> accepted | rejected ...

Each decision is a new ``reviews`` row (who, when, what, why); the decision it replaces keeps its row and points to
the new one (``replaced_by``), so the history is complete. Only sets with QC1 rows can be decided on. A set rejected
in review leaves the statistical thresholds and the last good set (:func:`rejected_in_review`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Subquery, func, insert, select, update
from sqlalchemy.engine import Connection

from flatqc.db import QC1_TABLES, reviews, utcnow
from flatqc.lifecycle import TransitionRefused


class Decision(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


NOT_REVIEWED = "not reviewed"
"""How pages and commands name the review state of a set nobody decided on."""


@dataclass(frozen=True)
class Review:
    """One decision on a set."""

    id: int
    set_id: str
    version: str | None
    night: str | None
    decision: Decision
    reviewer: str
    comment: str | None
    decided_at: datetime
    replaced_by: int | None
    """The later decision that replaced this one (None: in force)."""


def _review(row: Any) -> Review:
    return Review(row.id, row.set_id, row.version, row.night, Decision(row.decision), row.reviewer, row.comment,
                  row.decided_at, row.replaced_by)


def decide(conn: Connection, set_ids: Sequence[str], decision: Decision | str, reviewer: str,
           comment: str | None = None, at: datetime | None = None) -> list[int]:
    """Accept or reject the sets ``set_ids`` (one decision each, in the caller's transaction), replacing the
    decisions in force; returns the new decisions' ids. Refused (nothing written) when the reviewer is blank or a
    set has no QC1 rows."""
    decision = Decision(decision)
    reviewer = reviewer.strip()
    if not reviewer:
        raise TransitionRefused("a review decision needs the reviewer's name", None)
    processed = processed_sets(conn, set_ids)
    unknown = [s for s in set_ids if s not in processed]
    if unknown:
        raise TransitionRefused(f"no QC1 rows for set(s) {', '.join(unknown)}: only processed sets are reviewed",
                                None)
    at = at or utcnow()
    made = []
    for set_id in dict.fromkeys(set_ids):
        version, night = processed[set_id]
        new_id = conn.execute(insert(reviews).values(
            set_id=set_id, version=version, night=night, decision=decision, reviewer=reviewer,
            comment=(comment or "").strip() or None, decided_at=at).returning(reviews.c.id)).scalar_one()
        conn.execute(update(reviews).where(reviews.c.set_id == set_id, reviews.c.replaced_by.is_(None),
                                           reviews.c.id < new_id).values(replaced_by=new_id))
        made.append(new_id)
    return made


def processed_sets(conn: Connection, set_ids: Iterable[str]) -> dict[str, tuple[str | None, str]]:
    """``{set_id: (version, night)}`` of those of ``set_ids`` that have QC1 rows (those a decision can be made on)."""
    wanted = list(set_ids)
    found: dict[str, tuple[str | None, str]] = {}
    for table in QC1_TABLES.values():
        query = select(table.c.set_id, table.c.version, table.c.night).where(table.c.set_id.in_(wanted)).distinct()
        found |= {row.set_id: (row.version, row.night) for row in conn.execute(query)}
    return found


def sets_of_night(conn: Connection, night: str) -> list[str]:
    """The sets of ``night`` that have QC1 rows (those a decision can be made on), earliest ``MJD-OBS`` first."""
    found: dict[str, float] = {}
    for table in QC1_TABLES.values():
        query = (select(table.c.set_id, func.min(table.c.mjd_obs)).where(table.c.night == night)
                 .group_by(table.c.set_id))
        found |= {set_id: math.inf if mjd is None else mjd for set_id, mjd in conn.execute(query)}
    return sorted(found, key=lambda set_id: (found[set_id], set_id))


def in_force(conn: Connection, set_ids: Iterable[str]) -> dict[str, Review]:
    """The decision in force of each of ``set_ids`` that has one."""
    query = (select(reviews).where(reviews.c.set_id.in_(list(set_ids)), reviews.c.replaced_by.is_(None))
             .order_by(reviews.c.id))  # the newest wins should two decisions have been made at the same moment
    return {row.set_id: _review(row) for row in conn.execute(query)}


def decisions_in_force() -> Subquery:
    """SQL: ``(set_id, decision)`` of the decision in force on each reviewed set, one row per set (the newest should
    two have been made at the same moment, as :func:`in_force`), to join to QC1 rows by ``set_id``."""
    newest = select(func.max(reviews.c.id)).where(reviews.c.replaced_by.is_(None)).group_by(reviews.c.set_id)
    return select(reviews.c.set_id, reviews.c.decision).where(reviews.c.id.in_(newest)).subquery("review_in_force")


def history(conn: Connection, set_id: str) -> list[Review]:
    """Every decision on ``set_id``, newest first."""
    return histories(conn, [set_id]).get(set_id, [])


def histories(conn: Connection, set_ids: Iterable[str]) -> dict[str, list[Review]]:
    """Every decision on each of ``set_ids`` that has one, newest first (one query)."""
    query = select(reviews).where(reviews.c.set_id.in_(list(set_ids))).order_by(reviews.c.id.desc())
    found: dict[str, list[Review]] = {}
    for row in conn.execute(query):
        found.setdefault(row.set_id, []).append(_review(row))
    return found


def rejected_in_review(set_id: Any) -> ColumnElement[bool]:
    """SQL condition: the set named by the column ``set_id`` is rejected by the decision in force.

    A scalar subquery (the newest decision in force), so PostgreSQL probes ``ix_reviews_set`` for each row the
    caller's own index admits, where ``EXISTS`` became an anti join reading every decision ever made."""
    in_force_now = (select(reviews.c.decision).where(reviews.c.set_id == set_id, reviews.c.replaced_by.is_(None))
                    .order_by(reviews.c.id.desc()).limit(1).scalar_subquery())
    return func.coalesce(in_force_now, "") == Decision.REJECTED
