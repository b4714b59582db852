"""Review (contract 9): accepting or rejecting one set from its page, several sets of a night at once from the night
page, and the same under ``/api`` (a JSON object or a form as body; answers JSON). Every decision is written by
:func:`flatqc.lifecycle.reviews.decide`; a refused one is a 409 under ``/api`` and a message on the page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, request, session, url_for

from flatqc.lifecycle import TransitionRefused, reviews
from flatqc.web import queries
from flatqc.web.views import backends, page_and_api, wants_json

blueprint = Blueprint("reviews", __name__)


def posted() -> Mapping[str, Any]:
    """The request's fields: its JSON object, else its form (``set_ids``, when sent, as a list either way)."""
    if not request.is_json:
        fields: dict[str, Any] = request.form.to_dict()
        if "set_ids" in request.form:
            fields["set_ids"] = request.form.getlist("set_ids")
        return fields
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    return body


def text_field(fields: Mapping[str, Any], name: str) -> str:
    """A text field of the request ("" when absent); 400 when it is not text."""
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        abort(400, f"{name} must be text")
    return value or ""


def record_decision(set_ids: Sequence[str], fields: Mapping[str, Any], back: str, what: str) -> Any:
    """Decide on ``set_ids`` as ``fields`` say (``decision``: accepted or rejected, ``reviewer``, ``comment``);
    pages go back to ``back`` with a message naming ``what`` was decided, the API answers the decisions now in
    force (201)."""
    decision = text_field(fields, "decision")
    if decision not in set(reviews.Decision):
        abort(400, f"decision must be {' or '.join(reviews.Decision)}")
    reviewer, comment = text_field(fields, "reviewer").strip(), text_field(fields, "comment").strip()
    try:
        with backends().engine.begin() as conn:
            reviews.decide(conn, set_ids, decision, reviewer, comment)
            in_force = reviews.in_force(conn, set_ids)
    except TransitionRefused as refused:
        return refuse(str(refused), back)
    if wants_json():
        return jsonify({"decision": decision, "reviewer": reviewer, "comment": comment or None,
                        "decided": [{"set_id": s, "review": asdict(in_force[s])} for s in set_ids]}), 201
    session["reviewer"] = reviewer  # the review forms offer it next time
    flash(f"{what} {decision} by {reviewer}" + (f" ({comment})." if comment else "."), "done")
    return redirect(back)


def refuse(reason: str, back: str) -> Any:
    """Nothing decided, for ``reason``: 409 under ``/api``; pages go back to ``back`` with the reason."""
    if wants_json():
        abort(409, reason)
    flash(f"Nothing decided: {reason}.", "problem")
    return redirect(back)


@page_and_api(blueprint, "/sets/<set_id>/review", methods=("POST",))
def review_set(set_id: str) -> Any:
    """Accept or reject one set."""
    if not queries.set_known(backends().engine, set_id):
        abort(404, f"no set {set_id}")
    return record_decision([set_id], posted(), url_for("sets.set_page", set_id=set_id), f"Set {set_id}")


@page_and_api(blueprint, "/nights/<night>/review", methods=("POST",))
def review_night(night: str) -> Any:
    """Accept or reject the ticked sets of a night (``set_ids``; the API: all its processed sets when absent)."""
    with backends().engine.connect() as conn:
        processed = reviews.sets_of_night(conn, night)
    if not processed:
        abort(404, f"no processed set in night {night}")
    fields = posted()
    chosen = fields.get("set_ids")
    back = url_for("nights.night_page", night=night)
    if chosen is None and wants_json():
        chosen = processed
    if chosen is None:
        return refuse("no set ticked (tick the sets to decide on, or select all)", back)
    if not isinstance(chosen, list) or not chosen or not all(isinstance(s, str) for s in chosen):
        abort(400, "set_ids must be a non-empty list of set ids")
    chosen = list(dict.fromkeys(chosen))
    strangers = [s for s in chosen if s not in processed]
    if strangers:
        return refuse(f"not processed sets of night {night}: {', '.join(strangers)}", back)
    listed = ", ".join(chosen)
    return record_decision(chosen, fields, back, f"{len(chosen)} set{'s' if len(chosen) > 1 else ''} ({listed})")
