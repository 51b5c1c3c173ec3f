"""The scheduler loop: promote due retries and delayed jobs, sleep until the next one is due.

Any number of replicas may run this loop at once. ``promote.lua`` re-checks
every id it is given and moves a job only when its own ``ZREM`` removed it, so
two replicas that read the same due ids promote each job exactly once; the
replicas need no leader.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

import redis

from queuectl.core.errors import (
    CannotWorkError,
    ConflictError,
    DataError,
    QueueCtlError,
    RedisRefusedError,
)
from queuectl.core.health import Health, Monitor
from queuectl.core.metrics import SchedulerMetrics, new_registry
from queuectl.core.models import valid_name
from queuectl.core.redact import mask_url
from queuectl.core.resilience import Backoff
from queuectl.core.settings import Settings
from queuectl.core.store import Store, as_str
from queuectl.core.tracing import NO_TRACING, Tracing
from queuectl.scheduler import spans

log = logging.getLogger("queuectl.scheduler")

# The shortest block on the wake list: a zero timeout would make BLPOP block forever.
MIN_WAIT = 0.01
# The longest single BLPOP. It bounds how long a stop request waits, whatever
# scheduler_interval is, because a signal does not interrupt a blocking read.
MAX_BLOCK = 0.5
# Rounds that fail in a row for a reason other than Redis being away (a bug) before the
# scheduler gives up and exits 1 rather than pretend to work.
MAX_FAILED_ROUNDS = 10
# Upkeep per beat: ended jobs are deleted in batches for at most TIDY_BUDGET seconds
# (a backlog is worked off over several beats), and a slice of the queue names checked.
PRUNE_BATCH = 500
TIDY_BUDGET = 0.5
QUEUES_PER_BEAT = 200
# Registry entries of replicas that stopped beating this long ago are forgotten; pod
# names change on every restart, so without this the registry only ever grows.
REGISTRY_RETENTION = 3600.0
# The loop ticks every round (at most MAX_BLOCK apart) and while it waits out an outage;
# one Redis call may block for the socket timeout on each of redis-py's retries.
STUCK_AFTER = 150.0


class SchedulerFailedError(QueueCtlError):
    """The scheduler failed round after round for a reason other than an outage."""

    exit_code = 1


def default_scheduler_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Scheduler:
    """One scheduler replica; ``run()`` returns once ``stop`` is set."""

    def __init__(self, store: Store, settings: Settings, stop: threading.Event,
                 scheduler_id: str | None = None, url: str = "", *,
                 metrics: SchedulerMetrics | None = None, health: Health | None = None,
                 tracing: Tracing = NO_TRACING) -> None:
        self.store = store
        self.tracing = tracing
        self.metrics = metrics or SchedulerMetrics(new_registry("scheduler"))
        self.health = health or Health(STUCK_AFTER)
        self.monitor = Monitor(self.health, self.metrics.redis_errors.count)
        self.settings = settings
        self.stop = stop
        self.id = scheduler_id or default_scheduler_id()
        self.url = url or settings.redis_url or "the embedded server"
        self.redis_description = mask_url(self.url)
        self.promoted = 0
        self.instance = secrets.token_hex(8)
        self._queue_cursor = 0
        self.started_at = time.time()
        self._next_beat = 0.0  # monotonic time of the next heartbeat; 0 = beat now
        self._up_since: float | None = None  # monotonic start of the current connected spell
        self._backoff: Backoff | None = None

    # -- one round ---------------------------------------------------------------------
    def promote_due(self) -> float:
        """Promote everything due now; return how long to sleep before the next round."""
        batch = self.settings.scheduler_batch
        while True:
            started = time.time_ns()
            result = self.store.promote_due(batch, detail=spans.wanted(self.tracing))
            spans.promoted(self.tracing, self.id, result.jobs, started)
            self.promoted += result.moved
            self.metrics.promoted_jobs(result.now, result.counts, result.dues)
            if result.moved:
                log.debug("promoted %d job(s)", result.moved)
            # While a batch moved jobs and more is due, the next one follows at once: the
            # batch bounds how long one script call blocks Redis, not how fast a backlog
            # drains. On stop the batch in hand is finished (each batch is one atomic
            # script) and nothing more is started.
            more = result.next_due is not None and result.next_due <= result.now
            if not (result.moved and more) or self.stop.is_set():
                break
            # A long backlog must not let this replica's status expire meanwhile.
            self._beat_if_due()
        if result.next_due is None or (result.moved == 0 and result.next_due <= result.now):
            # Nothing left, or only items that cannot move now (left in place, e.g. a job
            # that cannot be quarantined): do not spin on them.
            return self.settings.scheduler_interval
        # Both times are the server's, so clock skew between pods does not matter.
        return min(self.settings.scheduler_interval, max(0.0, result.next_due - result.now))

    def beat(self) -> None:
        """Refresh this replica's status hash and registry entry."""
        k = self.store.keys
        now = self.store.heartbeat(
            k.scheduler(self.id), k.schedulers, self.id, self.settings.worker_ttl, self.instance,
            {
                "host": socket.gethostname(),
                "pid": str(os.getpid()),
                "started_at": f"{self.started_at:.6f}",
                "promoted": str(self.promoted),
            },
        )
        self.store.redis.zremrangebyscore(k.schedulers, "-inf", now - REGISTRY_RETENTION)

    def reap(self) -> int:
        """Hand back the jobs of workers whose heartbeat expired; returns jobs moved."""
        ttl = self.settings.worker_ttl
        moved = 0
        for worker_id in self.store.dead_workers(ttl):
            started = time.time_ns()
            try:
                result = self.store.reap_worker(worker_id, ttl)
            except DataError as exc:
                # That worker's in-flight set is unusable: the others are still reaped.
                self.store.notes([f"cannot reap worker {worker_id}: {exc}"])
                continue
            if result is None:
                continue  # it beat again meanwhile (a paused process resumed)
            spans.recovered(self.tracing, self.id, worker_id, result.jobs, started)
            moved += result.requeued + result.buried
            self.metrics.recovered.inc(result.requeued + result.buried)
            if result.requeued or result.buried:
                log.warning("worker %s is gone (no heartbeat for %gs): %d job(s) handed "
                            "back, %d moved to the DLQ after losing their worker too often",
                            worker_id, ttl, result.requeued, result.buried)
            else:
                log.info("worker %s is gone; it held no job", worker_id)
        return moved

    def _beat_if_due(self) -> None:
        # Reaping rides on the heartbeat: a dead worker's jobs are back within
        # worker_ttl + heartbeat_interval, and an idle scheduler costs nothing more.
        if time.monotonic() >= self._next_beat:
            self.beat()
            # After an outage (or at start) every worker's last beat looks old: give
            # live workers one TTL to beat again before calling anyone dead, or a Redis
            # restart would hand back jobs that are still running.
            up = self._up_since
            if up is not None and time.monotonic() - up >= self.settings.worker_ttl:
                self.reap()
            self.tidy()
            self._next_beat = time.monotonic() + self.settings.heartbeat_interval

    def tidy(self) -> None:
        """Retention and upkeep, a slice per beat: delete ended jobs past completed-ttl,
        dead jobs past dead-ttl or beyond dead-max (with their output and index entries),
        and forget queue names that hold nothing."""
        deadline = time.monotonic() + TIDY_BUDGET
        while self.store.prune(PRUNE_BATCH) >= PRUNE_BATCH and time.monotonic() < deadline:
            pass
        while sum(self.store.prune_dead(PRUNE_BATCH)) >= PRUNE_BATCH \
                and time.monotonic() < deadline:
            pass
        try:
            cursor, names = self.store.redis.sscan(self.store.keys.queues, self._queue_cursor,
                                                   count=QUEUES_PER_BEAT)
        except redis.ResponseError as exc:
            self.store.notes([f"cannot prune queue names: {exc}"])
            return
        self._queue_cursor = int(cursor)
        valid = [as_str(n) for n in names if valid_name(as_str(n))]
        if valid:
            self.store.prune_queues(valid)

    def idle(self, seconds: float) -> bool:
        """Block on the scheduler wake list for up to ``seconds``; True if woken early.

        ``enqueue.lua`` and ``fail.lua`` push a marker there when a new earliest
        item appears, so a job due sooner than ``seconds`` ends the sleep at once.
        The sleep is cut into blocks of at most MAX_BLOCK so that a stop request
        is seen promptly.
        """
        deadline = time.monotonic() + max(seconds, MIN_WAIT)
        wake = self.store.keys.scheduler_wake
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.store.redis.blpop([wake], timeout=max(MIN_WAIT, min(left, MAX_BLOCK))):
                return True
        return False

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Promote, beat and sleep until ``stop`` is set; survive Redis outages.

        Refused credentials or permissions raise RedisRefusedError (exit 6); a round
        that fails MAX_FAILED_ROUNDS times in a row for any other reason raises a
        QueueCtlError saying why (exit 1), so a scheduler that cannot work says so.
        """
        log.info("scheduler %s started (redis %s, prefix %s, batch %d, interval %gs)",
                 self.id, self.redis_description, self.settings.key_prefix,
                 self.settings.scheduler_batch, self.settings.scheduler_interval)
        with self.health.watching():
            self._loop()
        self._deregister()
        log.info("scheduler %s stopped; promoted %d job(s)", self.id, self.promoted)

    def _loop(self) -> None:
        backoff = self._backoff = Backoff("scheduler", self.url, self.stop, log, self.monitor)
        failed = 0
        while not self.stop.is_set():
            self.health.tick()
            try:
                backoff.call(self._round)
                failed = 0
            except (RedisRefusedError, CannotWorkError):
                raise
            except (DataError, ConflictError) as exc:
                # One of the scheduler's own keys has the wrong type (or its id is taken):
                # this round stops here and the next one tries again; logged at most
                # once a minute until fixed.
                self.store.notes([f"scheduler: {exc}"])
                self.stop.wait(self.settings.scheduler_interval)
            except Exception as exc:
                failed += 1
                log.exception("scheduler round failed (%d in a row)", failed)
                if failed >= MAX_FAILED_ROUNDS:
                    raise SchedulerFailedError(f"scheduler cannot work: {type(exc).__name__}: "
                                               f"{exc}") from None
                self.stop.wait(min(5.0, 0.1 * 2 ** failed))

    def _round(self) -> bool:
        if not self.health.scripts_loaded:
            self.store.load_scripts()
            self.health.scripts_loaded = True
        if self._backoff is not None and self._backoff.down_since is not None:
            # The first round after an outage runs inside Backoff.call, before it says
            # Redis is back: every worker's last beat looks old now, so live workers get
            # one TTL to beat again before anyone is called dead.
            self._up_since = None
        if self._up_since is None:
            self._up_since = time.monotonic()
        self._beat_if_due()
        wait = self.promote_due()
        # Never sleep past the next heartbeat.
        self.idle(min(wait, max(0.0, self._next_beat - time.monotonic())))
        return True

    def _deregister(self) -> None:
        """Leave the registry on a clean stop so that status shows no stale replica."""
        k = self.store.keys
        try:
            pipe = self.store.redis.pipeline(transaction=True)
            pipe.delete(k.scheduler(self.id))
            pipe.zrem(k.schedulers, self.id)
            pipe.execute()
        except redis.RedisError as exc:
            # The status hash expires on its own; the registry entry ages out.
            log.warning("could not deregister scheduler %s: %s", self.id, exc)
