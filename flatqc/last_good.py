"""Which set is the last good one (contract 9): a question for the QC1 tables, asked when a set is processed (QC
job and ``flatqc process`` alike) and again, by the set's recorded ``prev_set_id``, when its pictures are drawn.

The last good set of a set S: the most recent earlier set (by ``MJD-OBS``, strictly before S's) of the same profile
(the same QC1 table) and setting key that :func:`good_set_rows` admits. Only the current rows of a set count
(QC1 rows are replaced per set id), and a set version superseded by a newer one of its files is not a candidate.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import ColumnElement, Table, and_, func, select
from sqlalchemy.engine import Connection, Engine

from flatqc.db import QC1_TABLES, sets
from flatqc.files import path_from_text, sha256_file
from flatqc.lifecycle.reviews import rejected_in_review
from flatqc.lifecycle.sets import SetState
from qc.last_good import LastGoodSet
from qc.profiles import InstrumentProfile, profile_named
from qc.records import QC1_NAMES
from qc.sets import FlatSet

GOOD_VERDICTS = ("passed", "not_assessable")
"""Verdicts of a set that did not fail certification (contract 5)."""


def good_set_rows(table: Table) -> ColumnElement[bool]:
    """SQL condition on the rows of a QC1 table: rows of a good set, which may be the last good set of a later one
    and counts in the statistical thresholds of later rows (contract 9).

    Its set did not fail certification and was not rejected in review (the decision in force), and its version was
    not superseded by a newer one of the same set.

    The version's state is a scalar subquery (versions are unique): PostgreSQL turns a ``NOT EXISTS`` into an anti
    join and may answer it by reading every ``sets`` row, where this one probes the version's index for each row
    the caller's own index admits, as SQLite does.
    """
    state = select(sets.c.state).where(sets.c.version == table.c.version).scalar_subquery()
    return and_(table.c.verdict.in_(GOOD_VERDICTS), func.coalesce(state, "") != SetState.SUPERSEDED,
                ~rejected_in_review(table.c.set_id))


def find_last_good(engine: Engine, flatset: FlatSet) -> LastGoodSet | None:
    """The last good set of ``flatset`` as the database holds it now (None: there is none, or the set's own
    ``MJD-OBS`` is unknown)."""
    mjd = flatset.raws[0].mjd_obs
    if mjd is None:
        return None
    profile = profile_named(flatset.profile)
    table = QC1_TABLES[profile.table]
    with engine.connect() as conn:
        last = conn.execute(
            select(table.c.set_id)
            .where(table.c.setting_key == flatset.setting_key, table.c.mjd_obs < mjd,
                   table.c.set_id != flatset.set_id, good_set_rows(table))
            .order_by(table.c.mjd_obs.desc(), table.c.set_id.desc()).limit(1)).scalar()
        return _load(conn, profile, last) if last is not None else None


def recorded_last_good(engine: Engine, flatset: FlatSet) -> LastGoodSet | None:
    """The last good set ``flatset``'s QC1 rows were compared with (``prev_set_id``), for its pictures."""
    profile = profile_named(flatset.profile)
    table = QC1_TABLES[profile.table]
    with engine.connect() as conn:
        last = conn.execute(select(table.c.prev_set_id).where(table.c.set_id == flatset.set_id).limit(1)).scalar()
        return _load(conn, profile, last) if last is not None else None


def _load(conn: Connection, profile: InstrumentProfile, set_id: str) -> LastGoodSet | None:
    """The rows of ``set_id`` as a :class:`LastGoodSet`, its master checked (None if it has no rows any more).
    A row without its window (NULL) is taken as full frame."""
    table = QC1_TABLES[profile.table]
    rows = conn.execute(select(table).where(table.c.set_id == set_id).order_by(table.c.detector)).mappings().all()
    if not rows:
        return None
    first = rows[0]
    names = (*QC1_NAMES, *profile.bpm_bit_columns)
    master = path_from_text(first["master_file"])
    return LastGoodSet(
        set_id=set_id, night=first["night"], master=master,
        window_ny=first["ny"] or profile.full_ny, window_starty=first["window_starty"] or 1,
        qc1={row["detector"]: {name: row[name] for name in names} for row in rows},
        unusable=master_problem(master, first["master_sha256"]),
    )


def master_problem(master: Path, sha256: str | None) -> str | None:
    """Why the last good set's master cannot be compared with: gone, unreadable, or other bytes than its QC1 rows
    were computed from (``sha256``); None when it can be."""
    try:
        held = sha256_file(master)
    except FileNotFoundError:
        return "is gone"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if sha256 is not None and held != sha256:
        return "holds other bytes than the set was processed with"
    return None

