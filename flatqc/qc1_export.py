"""QC1 rows over nights, settings and detectors: the filters shared by ``/qc1``, ``/qc1.csv``, ``/api/qc1`` and
``flatqc export``, the rows read in batches from a server-side cursor and written as CSV or as a JSON array chunk by
chunk (memory stays flat however many rows), and the data dictionary of the exported columns.

Columns are read from the profile's SQLAlchemy table, in table order: a column added to the table (last-good deltas,
scores) is exported, shown, sortable and documented without a change here. After them comes ``review``, the review
decision in force on the row's set, joined from the ``reviews`` table in the same statement.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    FromClause,
    Integer,
    Select,
    Table,
    Text,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Engine

from flatqc.db import QC1_TABLES
from flatqc.files import shown
from flatqc.lifecycle.reviews import Decision, decisions_in_force
from qc.parameters import REVIEW, table_columns
from qc.profiles import PROFILES, profile_for_table
from qc.scores import Score

FILTERS: Mapping[str, str] = {
    "setting": "setting_key",
    "detector": "detector",
    "verdict": "verdict",
    "score": "score",  # contract 9: the row's worst score
    "review": REVIEW.name,  # contract 9: the decision in force on the set
}
"""Query parameter (and ``flatqc export`` option) -> the exported column it selects on by equality; a repeated
parameter selects any of its values. A parameter whose column the profile's table lacks is refused; the page offers
only the others."""
NONE = "none"
"""The value of a :data:`CHOICES` parameter that selects rows where its column is empty (not scored, not reviewed)."""
CHOICES: Mapping[str, tuple[str, ...]] = {
    "verdict": ("passed", "failed", "not_assessable"),
    "score": (*(s.value for s in Score), NONE),
    "review": (*(d.value for d in Decision), NONE),
}
"""The values a parameter may take (any other is refused); the page offers them in this order."""
IN_FORCE = decisions_in_force()
REVIEW_COLUMN = IN_FORCE.c.decision.label(REVIEW.name)
"""The ``review`` column of every export: the decision in force on the row's set, NULL when none."""

NOT_EXPORTED = frozenset({"id"})
"""Columns left out of exports and pages: the surrogate key, which changes when a set is reprocessed."""
PROVENANCE = frozenset({"version", "master_file", "master_sha256", "bpm_file", "bpm_sha256", "raw_files",
                        "raw_sha256", "thresholds_version", "software_version", "processed_at"})
"""Exported but not shown on the page (files, hashes, versions): the page stays readable."""
DEFAULT_ORDER = ("night", "set_id", "detector")
"""The order of rows, and the tie-break after a chosen sort column: stable across pages."""
PER_PAGE, MAX_PER_PAGE = 100, 1000
BATCH = 1000
"""Rows fetched from the cursor, and written, at a time."""
NIGHT = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadQuery(ValueError):
    """A filter, sort or page parameter that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Qc1Query:
    """What rows of which table, in what order (validated: see :func:`parse_query`)."""

    table: Table
    night_from: str | None = None
    night_to: str | None = None
    equals: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    """(column, accepted values) of each :data:`FILTERS` parameter given; None selects an empty column."""
    sort: str | None = None
    descending: bool = False


def table_of(name: str) -> Table:
    """The QC1 table of a profile named by its profile name (``crires``, ``crires+``) or its table name."""
    table = QC1_TABLES.get(PROFILES[name].table if name in PROFILES else name)
    if table is None:
        raise BadQuery(f"profile must be one of {', '.join(sorted(PROFILES))} (or a table: "
                       f"{', '.join(sorted(QC1_TABLES))}), not {name!r}")
    return table


def night_arg(name: str, value: str | None) -> str | None:
    """A night ``YYYY-MM-DD`` that is a real date, or None when not given."""
    if not value:
        return None
    try:
        if NIGHT.fullmatch(value):
            datetime.strptime(value, "%Y-%m-%d")
            return value
    except ValueError:
        pass
    raise BadQuery(f"{name} must be a night as YYYY-MM-DD, not {value!r}")


def parse_query(args: Mapping[str, Sequence[str]]) -> Qc1Query:
    """The query of parameters ``profile``, ``from``, ``to``, the :data:`FILTERS`, ``sort`` and ``dir`` (each
    name -> its values, as ``request.args.to_dict(flat=False)``); :class:`BadQuery` on anything unusable."""

    def one(name: str) -> str | None:
        values = [v for v in args.get(name, ()) if v != ""]
        return values[-1] if values else None

    table = table_of(one("profile") or "crires")
    night_from, night_to = night_arg("from", one("from")), night_arg("to", one("to"))
    if night_from and night_to and night_from > night_to:
        raise BadQuery(f"from ({night_from}) is after to ({night_to})")
    equals = []
    for parameter, name in FILTERS.items():
        values = [v for v in args.get(parameter, ()) if v != ""]
        if not values:
            continue
        if name not in table.c and name != REVIEW.name:
            raise BadQuery(f"{table.name} has no column {name} to filter on with {parameter}")
        equals.append((name, tuple(typed(column_of(table, name), parameter, v) for v in values)))
    sort = one("sort")
    if sort is not None and sort not in sortable(table):
        raise BadQuery(f"sort must be a column of {table.name} shown on the page, not {sort!r}")
    direction = one("dir") or "asc"
    if direction not in ("asc", "desc"):
        raise BadQuery(f"dir must be asc or desc, not {direction!r}")
    return Qc1Query(table, night_from, night_to, tuple(equals), sort, direction == "desc")


def typed(column: ColumnElement[Any], parameter: str, value: str) -> Any:
    """``value`` as the column's type: a whole number for integer columns, a number for real ones, else text; one
    of the parameter's :data:`CHOICES` if it has them (:data:`NONE` as None)."""
    allowed = CHOICES.get(parameter)
    if allowed is not None:
        if value not in allowed:
            raise BadQuery(f"{parameter} must be one of {', '.join(allowed)}, not {value!r}")
        return None if value == NONE else value
    try:
        if isinstance(column.type, Integer):
            return int(value)
        if isinstance(column.type, Float):
            return float(value)
    except ValueError:
        raise BadQuery(f"{parameter} must be a number, not {value!r}") from None
    return value


def parse_page(args: Mapping[str, Sequence[str]]) -> tuple[int, int]:
    """``page`` (from 1) and ``per_page`` (1..MAX_PER_PAGE) of the page view."""
    numbers = []
    for name, default, high in (("page", 1, None), ("per_page", PER_PAGE, MAX_PER_PAGE)):
        text = (list(args.get(name, ())) or [str(default)])[-1] or str(default)
        if not text.isdigit() or int(text) < 1 or (high is not None and int(text) > high):
            raise BadQuery(f"{name} must be a whole number from 1" + (f" to {high}" if high else "")
                           + f", not {text!r}")
        numbers.append(int(text))
    return numbers[0], numbers[1]


def export_columns(table: Table) -> list[ColumnElement[Any]]:
    """Every column of the table in table order but :data:`NOT_EXPORTED`, then :data:`REVIEW_COLUMN`."""
    return [*(c for c in table.columns if c.name not in NOT_EXPORTED), REVIEW_COLUMN]


def column_of(table: Table, name: str) -> ColumnElement[Any]:
    """The SQL of an exported column named ``name`` (a column of ``table``, or the review decision), to filter and
    sort on."""
    return IN_FORCE.c.decision if name == REVIEW.name else table.c[name]


def source(table: Table) -> FromClause:
    """``table`` joined to the review decisions in force (at most one per set: a row stays one row)."""
    return table.outerjoin(IN_FORCE, IN_FORCE.c.set_id == table.c.set_id)


def page_columns(table: Table) -> list[ColumnElement[Any]]:
    """The exported columns but the :data:`PROVENANCE` ones."""
    return [c for c in export_columns(table) if c.name not in PROVENANCE]


def sortable(table: Table) -> list[str]:
    """The columns a page may be sorted on: those it shows."""
    return [c.name for c in page_columns(table) if not isinstance(c.type, JSON)]


def filtered(query: Qc1Query, statement: Select[Any]) -> Select[Any]:
    """``statement`` restricted to the query's nights and filters (bound parameters only)."""
    table = query.table
    if query.night_from:
        statement = statement.where(table.c.night >= query.night_from)
    if query.night_to:
        statement = statement.where(table.c.night <= query.night_to)
    for name, values in query.equals:
        column, given = column_of(table, name), [v for v in values if v is not None]
        statement = statement.where(or_(column.in_(given), column.is_(None)) if None in values
                                    else column.in_(given))
    return statement


def rows_statement(query: Qc1Query) -> Select[Any]:
    """The exported columns of the matching rows, in the chosen order then :data:`DEFAULT_ORDER`."""
    table = query.table
    order: list[Any] = []
    if query.sort:
        column = column_of(table, query.sort)
        order.append(column.desc().nulls_last() if query.descending else column.asc().nulls_last())
    order += [table.c[name] for name in DEFAULT_ORDER if name != query.sort]
    return filtered(query, select(*export_columns(table)).select_from(source(table))).order_by(*order)


def count_rows(conn: Connection, query: Qc1Query) -> int:
    return conn.execute(filtered(query, select(func.count()).select_from(source(query.table)))).scalar_one()


def page_rows(engine: Engine, query: Qc1Query, page: int, per_page: int) -> tuple[int, list[dict[str, Any]]]:
    """The number of matching rows and the rows of one page (plain values, :func:`plain_rows`) by column name."""
    names = [c.name for c in export_columns(query.table)]
    with engine.connect() as conn:
        total = count_rows(conn, query)
        rows = conn.execute(rows_statement(query).limit(per_page).offset((page - 1) * per_page))
        return total, [dict(zip(names, row, strict=True)) for row in plain_rows(query.table, rows)]


def choices(engine: Engine, table: Table) -> dict[str, list[Any]]:
    """The values each :data:`FILTERS` parameter can take in ``table``: its :data:`CHOICES`, else its column's
    distinct values."""
    with engine.connect() as conn:
        return {parameter: list(CHOICES[parameter]) if parameter in CHOICES else
                list(conn.execute(select(table.c[name]).distinct().where(table.c[name].is_not(None))
                                  .order_by(table.c[name])).scalars())
                for parameter, name in FILTERS.items() if name in table.c or parameter in CHOICES}


Batch = list[list[Any]]
"""Rows, each the values of :func:`export_columns` in order."""


def stream_rows(engine: Engine, query: Qc1Query) -> Iterator[Batch]:
    """The matching rows (plain values, :func:`plain_rows`) in batches of :data:`BATCH`, read through a server-side
    cursor (``yield_per``: on PostgreSQL a named cursor, on SQLite the rows as they are stepped), never all at once."""
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=BATCH).execute(rows_statement(query))
        for batch in result.partitions():
            yield plain_rows(query.table, batch)


def positions(table: Table, *kinds: type) -> list[int]:
    """Positions among :func:`export_columns` of the columns of any of these SQL types."""
    return [i for i, c in enumerate(export_columns(table)) if isinstance(c.type, kinds)]


def plain_rows(table: Table, rows: Iterable[Sequence[Any]]) -> Batch:
    """Rows of ``table`` as plain JSON values: NaN and inf as None, times as ISO 8601 UTC (``Z``), file names (free
    text, JSON lists) as people read them (undecodable bytes as ``\\xNN``, :func:`flatqc.files.shown`)."""
    numbers, times, texts = positions(table, Float), positions(table, DateTime), positions(table, Text, JSON)
    plain = []
    for row in rows:
        values = list(row)
        for i in numbers:
            if values[i] is not None and not math.isfinite(values[i]):
                values[i] = None
        for i in times:
            if values[i] is not None:
                values[i] = values[i].isoformat() + "Z"
        for i in texts:
            if isinstance(values[i], str):
                values[i] = shown(values[i])
            elif isinstance(values[i], list):
                values[i] = [shown(v) if isinstance(v, str) else v for v in values[i]]
        plain.append(values)
    return plain


def csv_chunks(table: Table, batches: Iterable[Batch]) -> Iterator[str]:
    """CSV text (header, then one line per row; ``\\n`` line ends), one chunk per batch. Cells: NULL empty,
    booleans ``true``/``false``, lists as JSON, numbers as Python writes them (``repr``: every digit that tells
    floats apart)."""
    flags, lists = positions(table, Boolean), positions(table, JSON)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([c.name for c in export_columns(table)])
    for batch in batches:
        for values in batch:
            for i in flags:
                if values[i] is not None:
                    values[i] = "true" if values[i] else "false"
            for i in lists:
                if values[i] is not None:
                    values[i] = json.dumps(values[i])
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()  # the header of an empty export


def json_chunks(table: Table, batches: Iterable[Batch]) -> Iterator[str]:
    """A JSON array of row objects (column name: value), one row a line, one chunk per batch."""
    names = [c.name for c in export_columns(table)]
    opening = "["
    for batch in batches:
        if batch:
            yield opening + "\n" + ",\n".join(json.dumps(dict(zip(names, values, strict=True)), allow_nan=False)
                                              for values in batch)
            opening = ","
    yield "[]\n" if opening == "[" else "\n]\n"


FORMATS = ("csv", "json")
MEDIA_TYPES = {"csv": "text/csv", "json": "application/json"}


def export_chunks(table: Table, kind: str, batches: Iterable[Batch]) -> Iterator[str]:
    """Batches of rows of ``table`` (:func:`stream_rows`) as CSV or JSON text, chunk by chunk (``kind`` one of
    :data:`FORMATS`)."""
    return (json_chunks if kind == "json" else csv_chunks)(table, batches)


def export_name(query: Qc1Query, kind: str) -> str:
    """File name of a download: ``<table>_<from>_<to>.<kind>``."""
    return f"{query.table.name}_{query.night_from or 'first'}_{query.night_to or 'last'}.{kind}"


SQL_KINDS = ((Boolean, "boolean"), (Integer, "integer"), (Float, "number"), (DateTime, "time"),
             (JSON, "list (JSON text in CSV)"))


def data_dictionary(table: Table) -> list[dict[str, str]]:
    """Name, type, unit and description of each exported column, in export order."""
    described = {c.name: c for c in (*table_columns(profile_for_table(table.name)), REVIEW)}
    entries = []
    for column in export_columns(table):
        kind = next((k for t, k in SQL_KINDS if isinstance(column.type, t)), "text")
        known = described.get(column.name)
        entries.append({"name": column.name, "type": kind, "unit": known.unit if known else "",
                        "description": known.description if known else ""})
    return entries
