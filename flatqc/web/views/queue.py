"""Queue: the rq jobs (waiting, running, scheduled, failed) of the real-time QC, picture and backfill QC queues;
retrying a failed one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from rq.registry import FailedJobRegistry

from flatqc.status import queue_status
from flatqc.web import queries
from flatqc.web.views import backends, page_and_api, wants_json

blueprint = Blueprint("queue", __name__)


@page_and_api(blueprint, "/queue")
def queue_page() -> Any:
    """Queue depth, workers and the jobs of each registry, with their sets and last errors."""
    web = backends()
    status = vars(queue_status(web.settings, web.redis))
    jobs = queries.queue_jobs(web.engine, web.queue.in_order()) \
        if web.queue is not None and status["reachable"] else {}
    if wants_json():
        return jsonify(status | {f"{state}_jobs": listed for state, listed in jobs.items()})
    return render_template("queue.html", status=status, jobs=jobs)


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
