"""Alerts: failed certifications and trend-limit warnings, and acknowledging one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from flatqc.db import ALERT, WARNING
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle import alerts as alert_lifecycle
from flatqc.web import queries
from flatqc.web.format import same_site_path
from flatqc.web.views import backends, page_and_api, wants_json

blueprint = Blueprint("alerts", __name__)


@page_and_api(blueprint, "/alerts")
def alerts_page() -> Any:
    """Alerts and warnings, newest first, optionally of one ``state`` and one ``kind``."""
    state = request.args.get("state") or None
    severity = request.args.get("kind") or None
    if severity not in (None, ALERT, WARNING):
        abort(400, f"kind must be {ALERT} or {WARNING}")
    rows = queries.alert_list(backends().engine, state, severity)
    if wants_json():
        return jsonify(rows)
    return render_template("alerts.html", alerts=rows, state=state, kind=severity)


@blueprint.post("/alerts/<int:alert_id>/ack")
def ack_alert(alert_id: int) -> Any:
    """Acknowledge an open alert (who, comment), then go back to ``next`` if it is on this site."""
    by = (request.form.get("by") or "").strip() or "anonymous"
    try:
        with backends().engine.begin() as conn:
            alert_lifecycle.acknowledge(conn, alert_id, by, request.form.get("comment") or None)
    except TransitionRefused:
        abort(409, f"alert #{alert_id} is not open")
    flash(f"#{alert_id} acknowledged by {by}.", "done")
    return redirect(same_site_path(request.form.get("next")) or url_for("alerts.alerts_page"))
