"""Queue: the rq jobs (waiting, running, scheduled, failed) of the real-time QC, picture and backfill QC queues;
retrying a failed one; the jobs the repair pass ended as stalled and the sets it gave up on (Retry)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from rq.registry import FailedJobRegistry

from flatqc import ledger
from flatqc.lifecycle import TransitionRefused
from flatqc.lifecycle import sets as set_lifecycle
from flatqc.queue import Lane
from flatqc.status import queue_status, repair_events
from flatqc.web import queries
from flatqc.web.views import backends, page_and_api, wants_json

blueprint = Blueprint("queue", __name__)


@page_and_api(blueprint, "/queue")
def queue_page() -> Any:
    """Queue depth, workers and the jobs of each registry, with their sets and last errors; stalled jobs of the
    last day and the sets the repair pass gave up on."""
    web = backends()
    status = vars(queue_status(web.settings, web.redis))
    jobs = queries.queue_jobs(web.engine, web.queue.in_order()) \
        if web.queue is not None and status["reachable"] else {}
    repair = repair_events(web.engine)
    if wants_json():
        return jsonify(status | {f"{state}_jobs": listed for state, listed in jobs.items()} | asdict(repair))
    return render_template("queue.html", status=status, jobs=jobs, repair=repair)


@blueprint.post("/queue/failed/<job_id>/retry")
def retry_job(job_id: str) -> Any:
    """Queue a failed job again (found in the failed registry of any queue; it goes back to the queue it was on)."""
    web = backends()
    if web.queue is None:
        abort(503)
    for queue in web.queue.in_order():
        registry = FailedJobRegistry(queue=queue)
        if job_id in registry:
            registry.requeue(job_id)
            flash(f"Job {job_id} queued again.", "done")
    return redirect(url_for("queue.queue_page"))


@blueprint.post("/queue/sets/<version>/retry")
def retry_set(version: str) -> Any:
    """Queue a set version the repair pass gave up on again, on the queue of its lane; its count of automatic
    re-queues starts again."""
    web = backends()
    if web.queue is None:
        abort(503)
    try:
        with web.engine.begin() as conn:
            row = ledger.set_row(conn, version)
            if row is None:
                abort(404, f"no set version {version} in the ledger")
            job_id = set_lifecycle.requeue(conn, row, "retry requested on /queue", new_job=True)
    except TransitionRefused as refused:
        flash(f"Set version {version[:12]} cannot be queued again (state {refused.current}).", "problem")
    else:
        web.queue.enqueue_set(row.version, job_id, Lane(row.lane))
        flash(f"Set {row.set_id} queued again (job {job_id}).", "done")
    return redirect(url_for("queue.queue_page"))
