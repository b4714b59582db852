"""``flatqc worker``: a standard rq worker on the queues of :class:`flatqc.queue.JobQueue` in their order (real-time
QC, pictures, backfill QC: each taken only when none before it has a job waiting), JSON serializer, scheduler for
retries."""

from __future__ import annotations

import logging
import os
from typing import Any

from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from flatqc.notify import Notifier
from flatqc.queue import JobQueue
from flatqc.settings import Settings
from worker import jobs


class FlatqcWorker(Worker):
    """rq's worker, with one log line instead of a traceback for an expected retry (:class:`jobs.MemberChanged`).

    rq 3.0 logs the traceback in ``handle_exception`` *before* it calls the ``exception_handlers`` (which can only
    stop later handlers), so a handler cannot keep it out of the log; this override can. Retry and failure
    handling (``handle_job_failure``) are unchanged, and the job's result keeps the whole traceback."""

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if isinstance(exc_info[1], jobs.MemberChanged):
            retried = "will be retried" if job.retries_left else "no retries left"
            self.log.warning("Worker %s: job %s: %s (%s)", self.name, job.id, exc_info[1], retried)
            return
        super().handle_exception(job, *exc_info)

    def unsubscribe(self) -> None:
        """rq's, with a bounded wait for the pubsub thread: redis-py 8's ``stop()`` joins the thread, which, once the
        channel is left, sleeps up to rq's 60 s ``sleep_time`` before it looks at its stop flag again (a ``flatqc
        worker --burst`` then exited a minute late, now and then)."""
        if self.pubsub_thread and self.pubsub:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub.unsubscribe()
            self.pubsub_thread.stop(timeout=1)
            self.pubsub.close()


WORKER_TTL_S = 60
"""A worker's registration in Redis lives this long without a heartbeat (rq's default, 420 s, kept workers that
died, e.g. across a Redis restart with AOF, counted as alive for minutes) [s]."""


def run_worker(settings: Settings, queue: JobQueue, notifier: Notifier, burst: bool = False,
               name: str | None = None) -> None:
    """Work the jobs of ``queue``'s queues until stopped (SIGTERM: finish the current job, then exit), with
    ``notifier`` for the jobs' alerts. The caller waited for the database (schema created) and Redis."""
    jobs.prepare(settings, queue, notifier)  # numpy, astropy, PIL and the engine, once, before rq forks a horse per job
    os.register_at_fork(after_in_child=jobs.fresh_connections_in_child)
    worker = FlatqcWorker(
        queue.in_order(), connection=queue.connection,
        serializer=JSONSerializer, name=name, worker_ttl=WORKER_TTL_S,
        job_monitoring_interval=settings.job_heartbeat_s,
    )
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    worker.work(burst=burst, with_scheduler=True, logging_level=level if isinstance(level, str) else "INFO")
