"""Nights: the front page (``/``: the board of settings above the list of nights), and one night with its sets,
files and open alerts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from flatqc.db import ALERT, WARNING
from flatqc.status import nights, older_nights_exist
from flatqc.web import assessment, queries
from flatqc.web.board import board
from flatqc.web.views import backends, page_and_api, wants_json

NIGHTS_SHOWN = 100
"""Nights listed on the front page unless ``?limit=all``."""

blueprint = Blueprint("nights", __name__)


@page_and_api(blueprint, "/", "/api/nights")
def nights_page() -> Any:
    """Newest nights first with their set counts, verdicts and open alerts and warnings; the page shows the board
    (:mod:`flatqc.web.board`) above them."""
    engine = backends().engine
    limit_arg = request.args.get("limit", "all" if wants_json() else str(NIGHTS_SHOWN))
    if limit_arg != "all" and not limit_arg.isdigit():
        abort(400, "limit must be a whole number or 'all'")
    listed = nights(engine, None if limit_arg == "all" else int(limit_arg))
    summary = [asdict(n) for n in listed]
    open_counts = queries.open_alert_counts(engine)
    for entry in summary:
        entry["open_alerts"] = open_counts.get((entry["night"], ALERT), 0)
        entry["open_warnings"] = open_counts.get((entry["night"], WARNING), 0)
    if wants_json():
        return jsonify(summary)
    in_progress = any(n["sets"].get(s) for n in summary[:1] for s in ("queued", "running", "waiting"))
    more = limit_arg != "all" and bool(summary) and older_nights_exist(engine, summary[-1]["night"])
    return render_template("nights.html", nights=summary, refresh=in_progress, more=more, board=board(engine))


@blueprint.route("/api/board")
def board_api() -> Any:
    """The front page's board as JSON: per profile, its settings with their latest score and set, the last good set
    and the latest night's review state."""
    return jsonify([group.as_json() for group in board(backends().engine)])


@page_and_api(blueprint, "/nights/<night>")
def night_page(night: str) -> Any:
    """The sets of one night, failed first, with their scores and reviews (a form decides on the ticked sets), its
    rejected and ignored files and open alerts."""
    web = backends()
    detail = queries.night_detail(web.engine, night)
    if detail is None:
        abort(404, f"no night {night}")
    if wants_json():
        return jsonify(detail)
    return render_template("night.html", worst_shown=assessment.WORST_SHOWN, **detail)
