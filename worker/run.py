"""``flatqc worker``: a standard rq worker on the queues of :class:`flatqc.queue.JobQueue` in their order (real-time
QC, pictures, backfill QC: each taken only when none before it has a job waiting; a worker reserved for real time
listens to the first only), JSON serializer, scheduler for retries; beside it, the thread that delivers the alerts'
notifications (:mod:`flatqc.notify`)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer

from flatqc.db import make_engine
from flatqc.folders import wait_for_folders
from flatqc.heartbeat import beat_worker
from flatqc.notify import POLL_S, Notifier
from flatqc.queue import JobQueue, reporting_progress
from flatqc.readiness import StoppedWaiting, stop_on_signals
from flatqc.settings import Settings
from worker import jobs

DEQUEUE_TIMEOUT_S = 2
"""The longest wait of an idle worker for a job, see :attr:`FlatqcWorker.dequeue_timeout` [s]."""
PUBSUB_WAKE_S = 1
"""How often the thread listening for rq's commands wakes, see :meth:`FlatqcWorker.subscribe` [s]."""


class FlatqcWorker(Worker):
    """rq's worker, stopping within seconds on SIGTERM, with one log line instead of a traceback for an expected
    retry (:class:`jobs.MemberChanged`), the service's heartbeat (:mod:`flatqc.heartbeat`: alive, job started,
    job finished) under the name of its first queue, the QC queue, and the work-horse's own progress.

    rq 3.0 logs the traceback in ``handle_exception`` *before* it calls the ``exception_handlers`` (which can only
    stop later handlers), so a handler cannot keep it out of the log; this override can. Retry and failure
    handling (``handle_job_failure``) are unchanged, and the job's result keeps the whole traceback."""

    def heartbeat(self, *args: Any, **kwargs: Any) -> None:
        super().heartbeat(*args, **kwargs)
        self.beat()

    def execute_job(self, job: Job, queue: Queue) -> None:
        self.beat("job_started")
        try:
            super().execute_job(job, queue)
        finally:
            self.beat("job_finished")

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        """rq's, in the work-horse, which reports its progress meanwhile (:func:`flatqc.queue.reporting_progress`)."""
        with reporting_progress(self.connection, job.id, self.job_monitoring_interval):
            return super().perform_job(job, queue, execution)

    def beat(self, *events: str) -> None:
        """Publish this worker's heartbeat; a Redis error is logged, never raised into rq's loop."""
        try:
            beat_worker(self.connection, self.queues[0].name, self.name, *events)
        except RedisError as exc:
            self.log.warning("Worker %s: heartbeat not written (%s)", self.name, exc)

    @property
    def dequeue_timeout(self) -> int:
        """An idle worker waits for a job this long at a time (rq: ``worker_ttl`` - 15 s). The kernel may hand
        SIGTERM to another thread of the process (rq's pubsub thread, OpenBLAS'), and then Python runs the handler
        only when the main thread's wait ends: short waits make an idle worker stop within seconds, also as PID 1
        of a container."""
        return DEQUEUE_TIMEOUT_S

    def subscribe(self) -> None:
        """rq's subscription to its command channel, with a pubsub thread that wakes every ``PUBSUB_WAKE_S``
        (rq: 60 s). At shutdown rq stops that thread, and redis-py 8 waits for it without a time-out: a worker
        took up to a minute to stop."""
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment] # rq leaves it untyped (None)
            sleep_time=PUBSUB_WAKE_S, daemon=True, exception_handler=self._pubsub_exception_handler)

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
            if not self.pubsub_thread.is_alive():  # closing under a thread still in get_message: AttributeError there
                self.pubsub.close()


WORKER_TTL_S = 60
"""A worker's registration in Redis lives this long without a heartbeat (rq's default, 420 s, kept workers that
died, e.g. across a Redis restart with AOF, counted as alive for minutes) [s]."""


def run_worker(settings: Settings, queue: JobQueue, notifier: Notifier, burst: bool = False,
               name: str | None = None, realtime_only: bool = False) -> None:
    """Work the jobs of ``queue``'s queues (``realtime_only``: the real-time QC queue only) until stopped (SIGTERM:
    finish the current job, then exit), with ``notifier`` for the jobs' alerts. The caller waited for the database
    (schema created) and Redis; this waits for a writable QC output folder first, and SIGTERM or SIGINT meanwhile
    ends it."""
    stop = stop_on_signals()  # until rq's worker installs its own handlers
    try:
        wait_for_folders([settings.qc_output], write=True, stop=stop)
    except StoppedWaiting:
        return
    jobs.prepare(settings, queue, notifier)  # numpy, astropy, PIL and the engine, once, before rq forks a horse per job
    os.register_at_fork(after_in_child=jobs.fresh_connections_in_child)
    worker = FlatqcWorker(
        queue.in_order(realtime_only), connection=queue.connection,
        serializer=JSONSerializer, name=name, worker_ttl=WORKER_TTL_S,
        job_monitoring_interval=settings.job_heartbeat_s,
    )
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
    with delivering(settings, notifier):
        worker.work(burst=burst, with_scheduler=True, logging_level=level if isinstance(level, str) else "INFO")


@contextmanager
def delivering(settings: Settings, notifier: Notifier) -> Iterator[None]:
    """The delivery thread of this worker process (:meth:`Notifier.run`, with an engine of its own) while the body
    runs: alerts are sent beside the jobs, never by them; at the end it finishes its round (at most one deadline)."""
    stop = threading.Event()
    engine = make_engine(settings.db_url)
    thread = threading.Thread(target=notifier.run, args=(engine, stop), name="notifications", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(notifier.deadline_s + POLL_S + 5)
        engine.dispose()
