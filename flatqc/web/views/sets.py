"""Sets: one set with its QC1 rows, verdict, pictures and history; reprocessing it; the files of QC_OUTPUT."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, send_from_directory, url_for

from flatqc import ledger
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.queue import Lane
from flatqc.web import queries
from flatqc.web.views import backends, page_and_api, wants_json
from qc.parameters import UNITS
from qc.profiles import CRIRES

blueprint = Blueprint("sets", __name__)


def set_or_404(set_id: str) -> dict[str, Any]:
    """The newest version of a set with everything its page shows (``queries.set_detail``); 404 if unknown."""
    web = backends()
    detail = queries.set_detail(web.engine, set_id)
    if detail is None:
        abort(404, f"no set {set_id}")
    return detail


@page_and_api(blueprint, "/sets/<set_id>")
def set_page(set_id: str) -> Any:
    """The newest version of a set: verdict and reasons, QC1 values, pictures, provenance, jobs and alerts."""
    detail = set_or_404(set_id)
    if wants_json():
        return jsonify(detail)
    thresholds = backends().settings.qc_config(detail["set"]["profile"] or CRIRES.name)
    return render_template("set.html", thresholds=thresholds, units=UNITS, **detail)


@blueprint.post("/sets/<set_id>/reprocess")
def reprocess(set_id: str) -> Any:
    """Queue the newest version of a set again, on the backfill queue (behind the night's sets); its results are
    replaced when the job finishes."""
    web = backends()
    if web.queue is None:
        abort(503, "no Redis configured: cannot queue")
    detail = set_or_404(set_id)
    try:
        with web.engine.begin() as conn:
            row = ledger.set_row(conn, detail["set"]["version"])
            if row is None:
                abort(404, f"set {set_id} has no version in the ledger")
            job_id = set_lifecycle.requeue(conn, row, "reprocess requested in the dashboard", new_job=True,
                                           lane=Lane.BACKFILL)
    except TransitionRefused as refused:
        flash(f"Set {set_id} cannot be queued again (state {refused.current}).", "problem")
    else:
        web.queue.enqueue_set(row.version, job_id, Lane.BACKFILL)
        flash(f"Set {set_id} queued for reprocessing (job {job_id}); its state, QC1 rows and pictures are "
              "replaced when the job finishes.", "done")
    return redirect(url_for("sets.set_page", set_id=set_id))


@blueprint.get("/files/<path:relative>")
def output_file(relative: str) -> Any:
    """A file below QC_OUTPUT (pictures, cover sheets)."""
    output = backends().settings.qc_output.resolve()
    return send_from_directory(output, relative)  # safe_join: no way out of QC_OUTPUT
