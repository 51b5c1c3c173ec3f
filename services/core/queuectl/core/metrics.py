"""Every Prometheus metric QueueCTL exports, declared in one place (README "Metrics").

Base units (seconds, bytes), counters end in ``_total``, and the only label values
are bounded: queue names, outcomes, states and operation names; never a job id, a
command or a pod name.

Numbers about the whole cluster (jobs per queue and state, the oldest job's age,
retries due, workers) come from the scheduler alone, and only from the replica that
holds a short lease in Redis (``cluster_gauges_lease.lua``), so ``sum()`` or ``max()``
over every pod never counts a queue twice. Workers export what they did themselves,
so a sum over worker pods is the cluster's total.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

# Waits run from a millisecond (an idle worker) to hours (a backlog); runs from a
# millisecond (`true`) to the 30-day timeout cap; the last finite bucket keeps the
# quantiles usable for the long tail.
WAIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
                    43200.0, 86400.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
               60.0, 300.0, 900.0, 3600.0)

# How one run ended, from the job's point of view; exactly one per finished run.
OUTCOMES = ("succeeded", "retried", "timeout", "dead", "failed", "cancelled", "interrupted")
# Jobs by state in queuectl_queue_jobs; "retrying" is the record state "failed".
QUEUE_STATES = ("pending", "scheduled", "retrying", "processing", "dead")
WORKER_STATES = ("running", "stopping")
PROMOTION_SOURCES = ("retry", "delayed")


def new_registry(service: str) -> CollectorRegistry:
    """A registry with the process, platform and GC collectors and the build info."""
    # A `_created` sample beside every counter and histogram doubles the series for a
    # timestamp Prometheus does not use.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("queuectl_build", "QueueCTL version and the service of this process",
         registry=registry).info({"version": _version(), "service": service})
    return registry


def _version() -> str:
    try:
        return version("queuectl")
    except PackageNotFoundError:
        return "unknown"


# The operations of queuectl_redis_errors_total: the first word of each Backoff's name.
OPERATIONS = {"worker": ("start", "slot", "report", "ship", "heartbeat"),
              "scheduler": ("scheduler", "gauges")}


class RedisErrors:
    """queuectl_redis_errors_total{operation}: failed Redis calls, whatever their kind."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.counter = Counter("queuectl_redis_errors_total",
                               "Redis calls that failed (outage, timeout, refusal, error reply)",
                               ["operation"], registry=registry)
        # Every series exists from the start at 0: Prometheus sees a series' first
        # increase only if it scraped the series before it (rate() misses it otherwise).
        for operation in OPERATIONS[service]:
            self.counter.labels(operation)

    def count(self, operation: str) -> None:
        self.counter.labels(operation).inc()


class WorkerMetrics:
    """What one worker process did; a sum over worker processes is the cluster's total."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter("queuectl_jobs_started_total", "Runs started (fetched)",
                               ["queue"], registry=registry)
        self.finished = Counter("queuectl_jobs_finished_total",
                                "Runs ended, by what became of the job (README: Metrics)",
                                ["queue", "outcome"], registry=registry)
        self.duration = Histogram("queuectl_job_duration_seconds",
                                  "How long runs took, from start to end",
                                  ["queue", "outcome"], buckets=DURATION_BUCKETS,
                                  registry=registry)
        self.wait = Histogram("queuectl_job_wait_seconds",
                              "From ready to run (enqueued, due, handed back) to fetched; "
                              "a deliberate delay or back-off is not waiting",
                              ["queue"], buckets=WAIT_BUCKETS, registry=registry)
        self.slots = Gauge("queuectl_worker_slots", "Job slots (threads) of this worker",
                           registry=registry)
        self.busy = Gauge("queuectl_worker_busy_slots", "Job slots running a job now",
                          registry=registry)
        self.output = Counter("queuectl_job_output_bytes_total",
                              "Bytes of output the jobs wrote", ["queue"], registry=registry)
        self.redis_errors = RedisErrors(registry, "worker")

    def start(self, queues: Iterable[str], slots: int) -> None:
        """Create every series of ``queues`` at 0 (see RedisErrors), and set the slots."""
        self.slots.set(slots)
        for queue in queues:
            self.started.labels(queue)
            self.output.labels(queue)
            self.wait.labels(queue)
            for outcome in OUTCOMES:
                self.finished.labels(queue, outcome)
                self.duration.labels(queue, outcome)

    def run_started(self, queue: str, wait: float | None) -> None:
        self.started.labels(queue).inc()
        if wait is not None:
            self.wait.labels(queue).observe(wait)

    def run_finished(self, queue: str, outcome: str, seconds: float, output: int) -> None:
        self.finished.labels(queue, outcome).inc()
        self.duration.labels(queue, outcome).observe(seconds)
        if output:
            self.output.labels(queue).inc(output)


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """One queue's cluster-wide numbers, as ``queuectl status --json`` computes them."""

    name: str
    jobs: dict[str, int]  # by QUEUE_STATES
    oldest_ready_age: float
    retries_due: int


@dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    queues: list[QueueGauges]
    workers: dict[str, int]  # by WORKER_STATES


class ClusterCollector(Collector):
    """Exports the latest snapshot while this replica holds the lease, else nothing."""

    def __init__(self) -> None:
        self.snapshot: ClusterSnapshot | None = None

    def describe(self) -> Iterable[Metric]:
        return list(self._families(ClusterSnapshot([], {})))

    def collect(self) -> Iterable[Metric]:
        snapshot = self.snapshot
        return [] if snapshot is None else list(self._families(snapshot))

    @staticmethod
    def _families(snapshot: ClusterSnapshot) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("queuectl_queue_jobs", "Jobs in each queue and state now",
                                 labels=["queue", "state"])
        oldest = GaugeMetricFamily("queuectl_queue_oldest_job_age_seconds",
                                   "How long the queue's oldest ready job has waited "
                                   "(0 when none)", labels=["queue"])
        due = GaugeMetricFamily("queuectl_retries_due",
                                "Retries and delayed jobs due but not yet promoted",
                                labels=["queue"])
        for q in snapshot.queues:
            for state in QUEUE_STATES:
                jobs.add_metric([q.name, state], q.jobs.get(state, 0))
            oldest.add_metric([q.name], q.oldest_ready_age)
            due.add_metric([q.name], q.retries_due)
        workers = GaugeMetricFamily("queuectl_workers", "Live workers by state",
                                    labels=["state"])
        for state in WORKER_STATES:
            workers.add_metric([state], snapshot.workers.get(state, 0))
        yield from (jobs, oldest, due, workers)


class SchedulerMetrics:
    """One scheduler replica's counters, and the cluster gauges while it holds the lease."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.promoted = Counter("queuectl_promoted_total",
                                "Due retries and delayed jobs moved back to their queue",
                                ["queue", "source"], registry=registry)
        self.lag = Histogram("queuectl_promotion_lag_seconds",
                             "From a job's due time to its promotion",
                             buckets=LAG_BUCKETS, registry=registry)
        self.recovered = Counter("queuectl_recovered_jobs_total",
                                 "Jobs of dead workers handed back or, after max-lost, "
                                 "moved to the DLQ", registry=registry)
        self.leader = Gauge("queuectl_scheduler_leader",
                            "1 on the replica that exports the cluster gauges",
                            registry=registry)
        self.redis_errors = RedisErrors(registry, "scheduler")
        self.cluster = ClusterCollector()
        registry.register(self.cluster)

    def known_queues(self, queues: Iterable[str]) -> None:
        """Create the promotion series of ``queues`` at 0 (see RedisErrors)."""
        for queue in queues:
            for source in PROMOTION_SOURCES:
                self.promoted.labels(queue, source)

    def promoted_jobs(self, now: float, counts: Mapping[tuple[str, str], int],
                      dues: Iterable[float]) -> None:
        """Count one batch of promoted jobs (one increment per queue and source) and
        observe each job's lag from its due time to ``now``."""
        for (queue, source), n in counts.items():
            self.promoted.labels(queue, source).inc(n)
        for due in dues:
            self.lag.observe(max(0.0, now - due))
