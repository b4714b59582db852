"""The front page's board (HealthCheck style, contract 9): per instrument profile and setting key with QC1 rows, the
score and verdict of the setting's latest set, the days since its last good set and whether its latest night is
reviewed.

A fixed number of queries per QC1 table, none of which reads the whole history: the setting keys come from a loose
scan of the index ``ix_<table>_key_mjd`` (a recursive query that jumps from one key to the next), the latest and the
last good set of each key from ``ORDER BY mjd_obs DESC LIMIT 1`` on the same index, then the rows of those sets, the
sets of each latest night and their reviews by set id and night.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import CTE, Table, func, select
from sqlalchemy.engine import Connection, Engine

from flatqc.db import QC1_TABLES
from flatqc.last_good import good_set_rows
from flatqc.lifecycle.reviews import Decision, in_force
from qc.profiles import PROFILES
from qc.scores import RANK, Score, worst


@dataclass(frozen=True)
class SetSeen:
    """One set of a setting as the board names it."""

    set_id: str
    night: str
    mjd_obs: float
    """``MJD-OBS`` of the set [d]."""


@dataclass(frozen=True)
class BoardRow:
    """One setting key of one profile on the board."""

    setting_key: str
    latest: SetSeen
    """The setting's newest set by ``MJD-OBS`` (sets without ``MJD-OBS`` are not on the board)."""
    score: Score | None
    """The latest set's score: the worst ``score`` of its QC1 rows (None: not scored)."""
    verdict: str
    """The latest set's certification verdict (contract 5)."""
    last_good: SetSeen | None
    """The newest good set of the setting (:func:`flatqc.last_good.good_set_rows`), the latest itself included;
    None when there is none."""
    night_sets: int
    """Sets of this setting in the latest set's night."""
    night_reviewers: tuple[str, ...]
    """Reviewers of the decisions in force on those sets (sorted, each once)."""
    night_reviewed: int
    """Of those sets, how many have a decision in force."""
    night_rejected: int
    """Of those sets, how many are rejected by the decision in force."""

    @property
    def days_since_good(self) -> float | None:
        """Days [d] from the last good set's ``MJD-OBS`` to the latest set's (0 when the latest is good); None when
        the setting has no good set."""
        return None if self.last_good is None else self.latest.mjd_obs - self.last_good.mjd_obs

    @property
    def review(self) -> str:
        """The latest night's review state in words: ``reviewed by <names>``, ``<n> of <m> reviewed`` or
        ``not reviewed``."""
        if self.night_reviewed == 0:
            return "not reviewed"
        if self.night_reviewed < self.night_sets:
            return f"{self.night_reviewed} of {self.night_sets} reviewed"
        return "reviewed by " + ", ".join(self.night_reviewers)

    def as_json(self) -> dict[str, Any]:
        """The row as the API answers it."""
        return {"setting_key": self.setting_key, "score": self.score, "verdict": self.verdict,
                "set_id": self.latest.set_id, "night": self.latest.night, "mjd_obs": self.latest.mjd_obs,
                "last_good": None if self.last_good is None else asdict(self.last_good),
                "days_since_good": self.days_since_good,
                "night_sets": self.night_sets, "night_reviewed": self.night_reviewed,
                "night_rejected": self.night_rejected, "night_reviewers": list(self.night_reviewers),
                "review": self.review}


@dataclass(frozen=True)
class BoardGroup:
    """The settings of one instrument profile, worst latest score first, then by setting key."""

    profile: str
    title: str
    table: str
    rows: list[BoardRow]

    def as_json(self) -> dict[str, Any]:
        return {"profile": self.profile, "title": self.title, "table": self.table,
                "settings": [row.as_json() for row in self.rows]}


def board(engine: Engine) -> list[BoardGroup]:
    """The board: one group per profile with QC1 rows, in the order of :data:`qc.profiles.PROFILES`."""
    groups = []
    with engine.connect() as conn:
        for profile in PROFILES.values():
            rows = _table_board(conn, QC1_TABLES[profile.table])
            if rows:
                rows.sort(key=lambda r: (-RANK[r.score], r.setting_key))
                groups.append(BoardGroup(profile.name, profile.title, profile.table, rows))
    return groups


def _setting_keys(table: Table) -> CTE:
    """The distinct setting keys of ``table`` (column ``key``, one NULL row at the end), each found by one index
    probe for the smallest key above the previous one: a loose index scan, as fast at ten years as at one month."""
    keys = select(func.min(table.c.setting_key).label("key")).cte(f"{table.name}_keys", recursive=True)
    above = select(func.min(table.c.setting_key)).where(table.c.setting_key > keys.c.key).scalar_subquery()
    return keys.union_all(select(above).where(keys.c.key.is_not(None)))


def _table_board(conn: Connection, table: Table) -> list[BoardRow]:
    """The board rows of one QC1 table (unsorted)."""
    keys = _setting_keys(table)
    newest = (select(table.c.set_id)
              .where(table.c.setting_key == keys.c.key, table.c.mjd_obs.is_not(None))
              .order_by(table.c.mjd_obs.desc()).limit(1))
    found = conn.execute(select(keys.c.key, newest.scalar_subquery().label("latest"),
                                newest.where(good_set_rows(table)).scalar_subquery().label("good"))
                         .where(keys.c.key.is_not(None))).all()
    found = [row for row in found if row.latest is not None]
    if not found:
        return []
    seen = _sets_seen(conn, table, {row.latest for row in found} | {row.good for row in found} - {None})
    night_sets = _night_sets(conn, table, {(row.key, seen[row.latest].seen.night) for row in found})
    decisions = in_force(conn, [s for members in night_sets.values() for s in members])
    rows = []
    for row in found:
        latest = seen[row.latest]
        members = night_sets[row.key, latest.seen.night]
        decided = [decisions[s] for s in members if s in decisions]
        rows.append(BoardRow(
            setting_key=row.key, latest=latest.seen, score=latest.score, verdict=latest.verdict,
            last_good=seen[row.good].seen if row.good is not None else None, night_sets=len(members),
            night_reviewers=tuple(sorted({d.reviewer for d in decided})), night_reviewed=len(decided),
            night_rejected=sum(d.decision == Decision.REJECTED for d in decided)))
    return rows


@dataclass(frozen=True)
class _SetRows:
    """What the board reads of a set's QC1 rows."""

    seen: SetSeen
    verdict: str
    score: Score | None
    """The worst ``score`` of the rows."""


def _sets_seen(conn: Connection, table: Table, set_ids: set[str]) -> dict[str, _SetRows]:
    """Night, ``MJD-OBS``, verdict and score of each of ``set_ids``."""
    rows_of: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(select(table.c.set_id, table.c.night, table.c.mjd_obs, table.c.verdict, table.c.score)
                            .where(table.c.set_id.in_(sorted(set_ids)))):
        rows_of[row.set_id].append(row)
    return {set_id: _SetRows(SetSeen(set_id, rows[0].night, rows[0].mjd_obs), rows[0].verdict,
                             worst(r.score for r in rows))
            for set_id, rows in rows_of.items()}


def _night_sets(conn: Connection, table: Table, wanted: set[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
    """The set ids of each (setting key, night) of ``wanted``."""
    members: dict[tuple[str, str], list[str]] = {pair: [] for pair in wanted}
    query = (select(table.c.setting_key, table.c.night, table.c.set_id).distinct()
             .where(table.c.night.in_(sorted({night for _, night in wanted}))).order_by(table.c.set_id))
    for row in conn.execute(query):
        if (row.setting_key, row.night) in members:
            members[row.setting_key, row.night].append(row.set_id)
    return members
