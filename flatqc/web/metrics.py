"""Prometheus metrics, collected from the ledger and Redis at scrape time (any number of web processes agree)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from flatqc.heartbeat import Heartbeats, read_heartbeats
from flatqc.settings import Settings
from flatqc.status import queue_status
from flatqc.web.queries import metrics_figures

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
LATENCY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


def histogram(name: str, documentation: str, values: Sequence[float], buckets: Sequence[float]) -> Metric:
    """A histogram family from raw observations (cumulative bucket counts, +Inf, sum)."""
    counts = [(str(float(b)), sum(1 for v in values if v <= b)) for b in buckets]
    counts.append(("+Inf", len(values)))
    return HistogramMetricFamily(name, documentation, buckets=counts, sum_value=float(sum(values)))


def timestamp(moment: datetime | None) -> float | None:
    """Epoch seconds of a naive UTC time from the ledger."""
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def gauge(name: str, documentation: str, value: float | None) -> Iterator[Metric]:
    """The gauge, unless there is no value (e.g. no set yet): an absent series rather than a made-up one."""
    if value is not None:
        yield GaugeMetricFamily(name, documentation, value=value)


class LedgerCollector(Collector):
    """Everything ``/metrics`` shows, read at scrape time: the ledger, the queue, the heartbeats, the QC output disk.
    An unreachable database or Redis is a value (``flatqc_database_up``, ``flatqc_queue_reachable``), not an error
    answer: the scrape keeps working and says what is down."""

    def __init__(self, settings: Settings, engine: Engine, redis: Redis | None) -> None:
        self.settings, self.engine, self.redis = settings, engine, redis

    def collect(self) -> Iterator[Metric]:
        try:
            figures = metrics_figures(self.engine)
        except SQLAlchemyError:
            figures = None
        yield GaugeMetricFamily("flatqc_database_up", "1 if the database answers", value=int(figures is not None))
        if figures is not None:
            yield from self.ledger(figures)
        yield from self.queue()
        yield from self.disk()

    def ledger(self, figures: dict) -> Iterator[Metric]:
        files = CounterMetricFamily("flatqc_files", "File versions recorded in the ledger, by state", labels=["state"])
        for state, count in figures["file_states"].items():
            files.add_metric([state], count)
        yield files
        yield CounterMetricFamily("flatqc_files_seen", "File versions seen", value=figures["files_seen"])
        yield CounterMetricFamily("flatqc_files_rejected", "File versions rejected",
                                  value=figures["file_states"].get("rejected", 0))
        states = GaugeMetricFamily("flatqc_sets", "Set versions by state", labels=["state"])
        for state, count in figures["set_states"].items():
            states.add_metric([state], count)
        yield states
        pictures = GaugeMetricFamily("flatqc_pictures", "Sets by state of their pictures (pending, done, failed)",
                                     labels=["state"])
        for state, count in figures["pictures"].items():
            pictures.add_metric([state], count)
        yield pictures
        events = CounterMetricFamily("flatqc_job_events", "Events of set jobs in the ledger's job history (queued, "
                                     "started, finished, error, rejected, ...)", labels=["event"])
        for event, count in figures["job_events"].items():
            events.add_metric([event], count)
        yield events
        yield CounterMetricFamily("flatqc_sets_processed", "Set versions processed",
                                  value=figures["set_states"].get("done", 0))
        yield CounterMetricFamily("flatqc_sets_failed_certification", "Processed set versions that failed",
                                  value=figures["verdicts"].get("failed", 0))
        yield GaugeMetricFamily("flatqc_alerts_open", "Open alerts (failed certification)",
                                value=figures["open_alerts"])
        yield GaugeMetricFamily("flatqc_warnings_open", "Open trend-limit warnings", value=figures["open_warnings"])
        yield from gauge("flatqc_newest_file_timestamp_seconds", "When the newest file version taken (not ignored "
                         "or rejected) was first seen", timestamp(figures["newest_file"]))
        yield from gauge("flatqc_newest_set_timestamp_seconds", "When the newest set version was recorded",
                         timestamp(figures["newest_set"]))
        yield histogram("flatqc_job_duration_seconds", "Duration of set jobs", figures["durations"],
                        DURATION_BUCKETS)
        yield histogram("flatqc_arrival_to_qc1_seconds", "From the first file of a set to its QC1 rows",
                        figures["latencies"], LATENCY_BUCKETS)

    def queue(self) -> Iterator[Metric]:
        queue = queue_status(self.settings, self.redis)
        yield GaugeMetricFamily("flatqc_queue_reachable", "1 if Redis answers", value=int(queue.reachable))
        yield GaugeMetricFamily("flatqc_queue_depth", "Jobs waiting in the queue", value=queue.depth)
        yield GaugeMetricFamily("flatqc_queue_oldest_waiting_seconds", "Age of the oldest waiting job (0: none)",
                                value=queue.oldest_waiting_s or 0)
        yield GaugeMetricFamily("flatqc_jobs_running", "Jobs being worked on", value=queue.running)
        yield GaugeMetricFamily("flatqc_jobs_scheduled", "Jobs waiting for a retry", value=queue.scheduled)
        yield GaugeMetricFamily("flatqc_jobs_failed", "Jobs in rq's failed registry", value=queue.failed)
        yield GaugeMetricFamily("flatqc_workers", "Workers alive", value=queue.workers)
        restarts = CounterMetricFamily("flatqc_process_restarts", "Processes flatqc up started again, by role",
                                       labels=["role"])
        for role, count in queue.restarts.items():
            restarts.add_metric([role], count)
        yield restarts
        if queue.reachable and self.redis is not None:
            try:
                beats = read_heartbeats(self.redis, self.settings.queue_name)
            except RedisError:
                return
            yield from heartbeat_metrics(beats)

    def disk(self) -> Iterator[Metric]:
        try:
            usage = shutil.disk_usage(self.settings.qc_output)
        except OSError:
            return  # no folder: /healthz says so
        yield GaugeMetricFamily("flatqc_qc_output_free_bytes", "Free space for the QC output folder",
                                value=usage.free)
        yield GaugeMetricFamily("flatqc_qc_output_size_bytes", "Size of the QC output folder's file system",
                                value=usage.total)


def heartbeat_metrics(beats: Heartbeats) -> Iterator[Metric]:
    """The watcher's and the workers' heartbeats (:mod:`flatqc.heartbeat`) as timestamps."""
    yield from gauge("flatqc_watcher_last_round_timestamp_seconds", "When the watcher last completed a round",
                     beats.watcher.get("round"))
    yield from gauge("flatqc_watcher_last_rescan_timestamp_seconds", "When the watcher last completed a full round "
                     "(rescan and repair pass)", beats.watcher.get("rescan"))
    seen = GaugeMetricFamily("flatqc_worker_last_seen_timestamp_seconds", "When each worker was last seen alive",
                             labels=["worker"])
    jobs = GaugeMetricFamily("flatqc_worker_last_job_timestamp_seconds", "When each worker last started or "
                             "finished a job", labels=["worker", "event"])
    for name, worker in beats.workers.items():
        seen.add_metric([name], worker["seen"])
        for event in ("started", "finished"):
            if f"job_{event}" in worker:
                jobs.add_metric([name, event], worker[f"job_{event}"])
    yield seen
    yield jobs


def registry_for(settings: Settings, engine: Engine, redis: Redis | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(settings, engine, redis))
    return registry
