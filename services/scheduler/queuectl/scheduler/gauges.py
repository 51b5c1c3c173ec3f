"""The cluster gauges: jobs per queue and state, the oldest ready job's age, retries due
and live workers, exported by one scheduler replica at a time.

A thread of its own reads them, so a slow read over many queues never delays a
promotion. Each round it takes or renews the lease (``gauges_lease.lua``); the
holder computes the numbers with the code behind ``queuectl status --json``
(``Inspection.status``), the others export none, so ``sum()`` over every pod is
right. A holder that dies stops renewing and another replica takes over within
the lease. A snapshot too old to trust (Redis away) is withdrawn rather than shown.
"""

from __future__ import annotations

import logging
import threading
import time

import redis

from queuectl.core.client import Client
from queuectl.core.health import Monitor
from queuectl.core.metrics import ClusterSnapshot, QueueGauges, SchedulerMetrics
from queuectl.core.overview import Status
from queuectl.core.resilience import Failure, classify
from queuectl.core.store import Store

log = logging.getLogger("queuectl.scheduler")

# The lease outlives a few missed rounds so that a slow read does not hand it over.
LEASE_ROUNDS = 3


def snapshot(status: Status) -> ClusterSnapshot:
    """The gauges from what ``queuectl status --json`` shows."""
    queues = [QueueGauges(q.name, {"pending": q.pending, "scheduled": q.states["scheduled"],
                                   "retrying": q.states["failed"], "processing": q.processing,
                                   "dead": q.states["dead"]},
                          q.oldest_ready_age, q.retries_due)
              for q in status.queues]
    workers = {"running": 0, "stopping": 0}
    for w in status.workers:
        state = w.fields.get("state", "running")
        if w.alive and state in workers:
            workers[state] += 1
    return ClusterSnapshot(queues, workers)


class ClusterGauges(threading.Thread):
    """Refreshes ``metrics.cluster`` every ``interval`` seconds while this replica leads."""

    def __init__(self, store: Store, holder: str, interval: float, metrics: SchedulerMetrics,
                 stop: threading.Event, monitor: Monitor) -> None:
        super().__init__(name="gauges", daemon=True)
        self.client = Client(store)
        self.holder = holder
        self.interval = interval
        self.metrics = metrics
        self.stop = stop
        self.monitor = monitor
        self.leading = False
        self._taken_at = 0.0

    def run(self) -> None:
        with self.monitor.health.watching():
            # One attempt per round, never a retry loop: while Redis is away the rounds
            # go on, so that the stale numbers are withdrawn. Outages and refusals are
            # not logged here: the scheduler's own loop meets them too and says so once.
            while not self.stop.is_set():
                self.monitor.waited()
                try:
                    self.refresh()
                    self.monitor.recovered("gauges")
                except Exception as exc:
                    kind = classify(exc)
                    if kind is not Failure.OTHER or isinstance(exc, redis.RedisError):
                        self.monitor.failed("gauges", exc, kind is Failure.OUTAGE)
                    if kind is Failure.OTHER:
                        # A bug or a key of the wrong type: the gauges go stale, never the
                        # scheduler; said at most once a minute, and tried again.
                        self.client.store.notes([f"cluster gauges not refreshed: "
                                                 f"{type(exc).__name__}: {exc}"])
                self._withdraw_if_stale()
                self.stop.wait(self.interval)
        self.metrics.cluster.snapshot = None

    def refresh(self) -> None:
        """One round: hold the lease, then read and publish the numbers (or publish none)."""
        leading = self.client.store.gauges_lease(self.holder, self.interval * LEASE_ROUNDS)
        if leading != self.leading:
            log.info("%s the cluster gauges", "exporting" if leading else "no longer exporting")
            self.leading = leading
        self.metrics.leader.set(1 if leading else 0)
        if not leading:
            self.metrics.cluster.snapshot = None
            return
        self.metrics.cluster.snapshot = snapshot(self.client.status(hints=False))
        self._taken_at = time.monotonic()

    def _withdraw_if_stale(self) -> None:
        # While Redis is away the lease may pass to another replica: stop exporting
        # numbers that may be old and may be exported by someone else too.
        if time.monotonic() - self._taken_at > self.interval * LEASE_ROUNDS:
            self.metrics.cluster.snapshot = None
            self.metrics.leader.set(0)
