"""QC1 browser: the rows of a profile's QC1 table filtered by nights, setting, detector, verdict (and score), sorted
and paged (``/qc1``); the same filters as a streamed CSV (``/qc1.csv``) or JSON array (``/api/qc1``) download; the
data dictionary of the exported columns (``/api/qc1/columns``)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, render_template, request, stream_with_context, url_for

from flatqc import qc1_export
from flatqc.qc1_export import BadQuery, Qc1Query
from flatqc.web.views import backends, page_and_api, wants_json
from qc.profiles import PROFILES, profile_for_table

blueprint = Blueprint("qc1", __name__)


def parsed_query() -> Qc1Query:
    """The request's filters; 400 with the reason when one is unusable."""
    try:
        return qc1_export.parse_query(request.args.to_dict(flat=False))
    except BadQuery as exc:
        abort(400, str(exc))


def download(query: Qc1Query, kind: str) -> Response:
    """The matching rows streamed as CSV or JSON: batches from a server-side cursor, written as they come."""
    chunks = qc1_export.export_chunks(query.table, kind, qc1_export.stream_rows(backends().engine, query))
    disposition = "attachment" if kind == "csv" else "inline"
    return Response(stream_with_context(chunks), mimetype=qc1_export.MEDIA_TYPES[kind],
                    headers={"Content-Disposition": f'{disposition}; filename="{qc1_export.export_name(query, kind)}"'})


@page_and_api(blueprint, "/qc1")
def qc1_page() -> Any:
    """QC1 rows of one profile, filtered, sorted and paged; under /api every matching row as a JSON array."""
    query = parsed_query()
    if wants_json():
        return download(query, "json")
    try:
        page, per_page = qc1_export.parse_page(request.args.to_dict(flat=False))
    except BadQuery as exc:
        abort(400, str(exc))
    engine = backends().engine
    total, rows = qc1_export.page_rows(engine, query, page, per_page)
    args: dict[str, Any] = {k: v for k, v in request.args.to_dict(flat=False).items() if k != "page"}
    filters: dict[str, Any] = {k: v for k, v in args.items() if k != "per_page"}
    sortable = qc1_export.sortable(query.table)
    flipped = "asc" if query.descending else "desc"
    sort_links = {name: url_for("qc1.qc1_page", **(args | {"sort": name, "dir": flipped if name == query.sort
                                                             else "asc"})) for name in sortable}
    return render_template(
        "qc1.html", rows=rows, total=total, page=page, per_page=per_page, pages=max(1, -(-total // per_page)),
        columns=[c.name for c in qc1_export.page_columns(query.table)], sort_links=sort_links, query=query,
        profile=profile_for_table(query.table.name).name, profiles=[(p.name, p.title) for p in PROFILES.values()],
        choices=qc1_export.choices(engine, query.table), args=args,
        csv_url=url_for("qc1.qc1_csv", **filters), json_url=url_for("qc1.api_qc1_page", **filters))


@blueprint.get("/qc1.csv")
def qc1_csv() -> Response:
    """Every matching QC1 row as CSV (the columns of the profile's table in table order, a header line first)."""
    return download(parsed_query(), "csv")


@blueprint.get("/api/qc1/columns")
def qc1_columns() -> Any:
    """The data dictionary of a profile's export: name, type, unit and description of each column, in order."""
    return jsonify(qc1_export.data_dictionary(parsed_query().table))
