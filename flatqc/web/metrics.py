"""Prometheus metrics, collected from the ledger and Redis at scrape time (any number of web processes agree)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from sqlalchemy.engine import Engine

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


class LedgerCollector(Collector):
    def __init__(self, settings: Settings, engine: Engine, redis: Redis | None) -> None:
        self.settings, self.engine, self.redis = settings, engine, redis

    def collect(self) -> Iterator[Metric]:
        figures = metrics_figures(self.engine)
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
        yield CounterMetricFamily("flatqc_sets_processed", "Set versions processed",
                                  value=figures["set_states"].get("done", 0))
        yield CounterMetricFamily("flatqc_sets_failed_certification", "Processed set versions that failed",
                                  value=figures["verdicts"].get("failed", 0))
        yield GaugeMetricFamily("flatqc_alerts_open", "Open alerts (failed certification)",
                                value=figures["open_alerts"])
        yield GaugeMetricFamily("flatqc_warnings_open", "Open trend-limit warnings", value=figures["open_warnings"])
        yield histogram("flatqc_job_duration_seconds", "Duration of set jobs", figures["durations"],
                        DURATION_BUCKETS)
        yield histogram("flatqc_arrival_to_qc1_seconds", "From the first file of a set to its QC1 rows",
                        figures["latencies"], LATENCY_BUCKETS)
        queue = queue_status(self.settings, self.redis)
        yield GaugeMetricFamily("flatqc_queue_reachable", "1 if Redis answers", value=int(queue.reachable))
        yield GaugeMetricFamily("flatqc_queue_depth", "Jobs waiting in the queue", value=queue.depth)
        yield GaugeMetricFamily("flatqc_jobs_failed", "Jobs in rq's failed registry", value=queue.failed)
        yield GaugeMetricFamily("flatqc_workers", "Workers alive", value=queue.workers)
        restarts = CounterMetricFamily("flatqc_process_restarts", "Processes flatqc up started again, by role",
                                       labels=["role"])
        for role, count in queue.restarts.items():
            restarts.add_metric([role], count)
        yield restarts


def registry_for(settings: Settings, engine: Engine, redis: Redis | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(settings, engine, redis))
    return registry
