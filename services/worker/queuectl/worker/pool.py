"""The worker pool: N job slots, each fetching and running one job at a time, supervised.

Each slot fetches for itself only when it is free, so a worker never takes more
jobs than it can start; an idle slot blocks on the queues' wake lists (and on
the worker's own wakeup list, used at shutdown) instead of polling.

No thread dies unnoticed. A slot survives any error of one run: the run ends
(failed when the job's own input caused it, handed back without spending a
retry when this host did), and the slot goes on. What means the worker cannot
work (its Redis credentials or permissions refused, its own keys unusable, its
id taken over, this host failing every run) is recorded once in ``fatal`` and
stops the worker, which then exits non-zero saying why.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass

import redis

from queuectl.core.errors import (
    EXIT_DATA,
    EXIT_REDIS,
    CannotWorkError,
    DataError,
    RedisRefusedError,
)
from queuectl.core.health import Health, Monitor
from queuectl.core.metrics import WorkerMetrics, new_registry
from queuectl.core.resilience import Backoff
from queuectl.core.settings import LogTarget, Settings
from queuectl.core.store import Fetched, Store
from queuectl.core.tracing import NO_TRACING, Tracing
from queuectl.worker.executor import ExecConfig, Execution
from queuectl.worker.heartbeat import EXIT_CANNOT_WORK, Heartbeat, status_fields
from queuectl.worker.janitor import LogJanitor
from queuectl.worker.jobenv import base_env
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import Ending, RunResult, describe
from queuectl.worker.remains import ProcessControl
from queuectl.worker.reports import IDLE, NOTHING, Next, Reporter
from queuectl.worker.spans import Attempt

log = logging.getLogger("queuectl.worker")
# Runs this host could not start, in a row and across slots, before the worker gives
# up (a full disk, an unusable log directory): it stops fetching and exits 1 rather
# than hand the same jobs back forever.
ENVIRONMENT_FAILURE_LIMIT = 5
# A loop of this worker (a job slot, the heartbeat, the main thread) that made no progress
# for this long is hung: /healthz fails. Each ticks at least every few seconds, also while
# it runs a job or waits out an outage; one Redis call can block for the socket timeout
# (30 s) on each of redis-py's retries, hence the margin.
STUCK_AFTER = 150.0
# How long a stopping worker waits for a retention pass in progress (one pipelined
# Redis call and some unlinks) before it closes the log directory anyway.
JANITOR_JOIN = 5.0


def default_worker_id() -> str:
    # The random part keeps ids unique when a container restarts with the same hostname and pid.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass(frozen=True, slots=True)
class Fatal:
    """Why the worker stopped on its own, and the exit code that says so."""

    reason: str
    code: int


class Worker:
    """One worker process: ``count`` job slots over ``queues`` in strict priority order."""

    def __init__(self, store: Store, settings: Settings, count: int, queues: list[str],
                 url: str = "", *, metrics: WorkerMetrics | None = None,
                 health: Health | None = None, tracing: Tracing = NO_TRACING) -> None:
        self.store = store
        self.metrics = metrics or WorkerMetrics(new_registry("worker"))
        self.health = health or Health(STUCK_AFTER)
        self.monitor = Monitor(self.health, self.metrics.redis_errors.count)
        self.tracing = tracing
        self.settings = settings
        self.count = count
        self.queues = queues
        self.url = url or settings.redis_url or "redis"
        self.id = settings.worker_id or default_worker_id()
        self.stopping = threading.Event()
        self.hard = threading.Event()
        self.fatal: Fatal | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, Execution] = {}
        self._threads: list[threading.Thread] = []
        self._environment_failures = 0
        self._logs = (LogDir(settings.resolved_log_dir)
                      if settings.log_target is not LogTarget.STDOUT else None)
        self._procs = ProcessControl(settings.kill_grace)
        self._cfg = ExecConfig(self.id, self._logs, settings.log_target, store.log_cap,
                               self._procs, base_env(settings), self.health.tick)
        # Tells this process apart from any other that was given the same worker id.
        self.instance = secrets.token_hex(8)
        self.reports = Reporter(store, self.id, queues, self.url, self.hard, self, self.monitor)
        self._janitor = (LogJanitor(store, self._logs, self._running_ids, self._done,
                                    self.health, settings.log_sweep_interval)
                         if self._logs is not None else None)
        self._heartbeat = Heartbeat(store, self.id, self.instance, self.url,
                                    settings.heartbeat_interval, settings.worker_ttl,
                                    self._status, self.request_stop, self._done,
                                    self.reports.reconcile, self.fail, self.monitor)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Open the log directory, claim the worker id, start the heartbeat and the slots.

        Raises QueueCtlError (one line, its exit code) when the worker cannot work:
        CannotWorkError for an unusable log directory, ConflictError while another
        live worker holds this id.
        """
        if self._logs is not None:
            try:
                self._logs.open()
            except OSError as exc:
                raise CannotWorkError(f"cannot use log directory {self._logs.path}: "
                                      f"{describe(exc)}") from None
        self._procs.setup(self.settings.job_cgroup)
        # A pod restarted under the same id finds its old status alive for up to a TTL.
        wait = self.settings.worker_ttl + self.settings.heartbeat_interval
        claimed = Backoff("start", self.url, self.stopping, log, self.monitor).call(
            lambda: self._heartbeat.claim(wait, self.stopping))
        if claimed is None:
            return  # stopped before Redis answered: nothing was started
        self._heartbeat.start()
        if self._janitor is not None:
            self._janitor.start()
        self.metrics.start(self.queues, self.count)
        for slot in range(self.count):
            thread = threading.Thread(target=self._slot, args=(slot,), name=f"job-{slot}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("worker %s started: %d threads on queues %s", self.id, self.count,
                 ",".join(self.queues))

    def fail(self, reason: str, code: int, *, hard: bool = True) -> None:
        """The worker cannot work: stop it (now, or after a drain) and exit with ``code``."""
        with self._lock:
            if self.fatal is not None:
                return
            self.fatal = Fatal(reason, code)
        log.error("%s", reason)
        if hard:
            self.hard_stop()
        else:
            self.request_stop()

    def request_stop(self) -> None:
        """Stop fetching; running jobs finish. Safe to call more than once, from any thread."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.health.draining = True
        log.info("stopping: no new jobs; waiting for %d running", len(self._running))
        # Called from a signal handler too, which may interrupt the main thread anywhere
        # (inside an import, a lock): the Redis call runs on a thread of its own.
        threading.Thread(target=self._wake_idle_slots, name="wake-slots", daemon=True).start()

    def _wake_idle_slots(self) -> None:
        """Idle slots block on the wake lists; one marker each wakes them now, and one
        more stays: the fetch an idle slot sent behind its wait finds it and takes no job."""
        try:
            key = self.store.keys.wakeup(self.id)
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.rpush(key, *(["1"] * (self.count + 1)))
            pipe.expire(key, 60)
            pipe.execute()
        except Exception as exc:
            # They wake within idle_wait anyway.
            log.debug("could not wake idle slots: %s", exc)

    def hard_stop(self) -> None:
        """Stop running jobs now and hand them back to their queues."""
        self.request_stop()
        if not self.hard.is_set():
            self.hard.set()
            with self._lock:
                running = list(self._running.values())
            log.warning("stopping now: interrupting %d running job(s)", len(running))
            for execution in running:
                execution.interrupt()

    def tend(self) -> None:
        """Reap the jobs' orphans that died; called often from the main thread."""
        try:
            self._procs.reap()
        except OSError as exc:
            log.warning("could not reap orphaned job processes: %s", exc)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> int:
        """Leave the registry; returns the number of jobs still held (0 after a clean stop)."""
        self._done.set()
        self._procs.reap()
        self._procs.close()
        if self._janitor is not None and self._janitor.is_alive():
            self._janitor.join(JANITOR_JOIN)
        if self._janitor is not None and not self._janitor.is_alive():
            self._janitor.close()
        if self._logs is not None:
            self._logs.close()
        try:
            held = self.store.unregister_worker(self.id, self.instance)
        except (redis.RedisError, DataError) as exc:
            log.warning("could not unregister (%s); the heartbeat key expires by itself", exc)
            return 0
        if held:
            log.warning("%d job(s) still held; recovery will hand them back", held)
        log.info("worker %s stopped (%d processed, %d failed)", self.id,
                 self.reports.processed, self.reports.failed)
        return held

    def _running_ids(self) -> set[str]:
        with self._lock:
            return {e.job.id for e in self._running.values()}

    def _status(self) -> dict[str, str]:
        with self._lock:
            current = [e.job.id for e in self._running.values()]
        state = "stopping" if self.stopping.is_set() else "running"
        alive = sum(t.is_alive() for t in self._threads)
        return status_fields(self.count, self.queues, state, current, self.reports.processed,
                             self.reports.failed, alive, self._environment_failures)

    # -- job slots ----------------------------------------------------------------------
    def _slot(self, slot: int) -> None:
        with self.health.watching():
            self._fetch_and_run(slot)

    def _fetch_and_run(self, slot: int) -> None:
        fetching = Backoff(f"slot {slot}", self.url, self.stopping, log, self.monitor)
        # A busy slot's next job comes with the outcome of its last (one script call); a
        # job leased as a stop came in is run like one fetched just before it.
        nxt = NOTHING
        while nxt.job is not None or not self.stopping.is_set():
            self.health.tick()
            job, empty, nxt = nxt.job, nxt.empty, NOTHING
            try:
                if job is None and not empty:
                    job = fetching.call(self.reports.fetch)
                if job is None:
                    job = self._idle(fetching)
                    if job is None:  # the fetch after the wait found every queue empty
                        nxt = IDLE
                if job is not None:
                    nxt = self._run(slot, job)
            except RedisRefusedError as exc:
                self.fail(str(exc), EXIT_REDIS)
            except DataError as exc:
                self.fail(f"cannot fetch jobs: {exc}", EXIT_DATA)
            except Exception:
                # A bug, not the job's fault nor Redis being away: the slot goes on.
                log.exception("job slot %d: unexpected error; the slot goes on", slot)
                self.stopping.wait(1.0)

    def _idle(self, backoff: Backoff) -> Fetched | None:
        """Block until a queue of ours may have work, a stop, or idle_wait passes, and
        fetch then, in the same round trip (Store.wait_fetch): the job, or None."""
        try:
            return backoff.call(lambda: self.reports.wait_fetch(self.settings.idle_wait))
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            # A wake list of the wrong type: poll instead of blocking until it is fixed.
            self.store.notes([f"worker {self.id}: a wake list has the wrong type; polling"])
            self.stopping.wait(1.0)
            return None

    def _run(self, slot: int, job: Fetched) -> Next:
        attempt = Attempt(self.tracing, job, self.id)  # process span, log fields (spans.py)
        execution = Execution(job, self._cfg, self.reports.ship, attempt.env())
        self.metrics.run_started(job.queue, job.wait)
        self.metrics.busy.inc()
        with self._lock:
            self._running[slot] = execution
        if self.hard.is_set():
            execution.interrupt()
        try:
            result = execution.run()
        except Exception as exc:
            # The executor failed, not the job: hand it back without spending a retry.
            log.exception("job %s: the worker failed to run it", job.id)
            result = RunResult(Ending.ENVIRONMENT, None,
                               f"the worker failed to run it: {type(exc).__name__}: {exc}",
                               b"", 0, 0.0)
        finally:
            with self._lock:
                del self._running[slot]
        # While draining, the outcome only: no job is fetched (SIGTERM stops fetching).
        outcome, nxt = self.reports.report(job, result, fetch_next=not self.stopping.is_set())
        attempt.end(result, outcome)
        self.metrics.busy.dec()
        self.metrics.run_finished(job.queue, outcome, result.seconds, result.produced)
        self.stopping.wait(self._count_environment(result))
        return nxt

    def _count_environment(self, result: RunResult) -> float:
        """Give up after ENVIRONMENT_FAILURE_LIMIT host failures in a row; until then,
        return how long the slot should pause (the job went back to the front of its
        queue: fetching it again at once would only fail again)."""
        if result.ending is not Ending.ENVIRONMENT:
            with self._lock:
                self._environment_failures = 0
            return 0.0
        with self._lock:
            self._environment_failures += 1
            failures = self._environment_failures
        if failures >= ENVIRONMENT_FAILURE_LIMIT:
            self.fail(f"cannot run jobs on this host ({failures} runs in a row could not "
                      f"start): {result.error}", EXIT_CANNOT_WORK, hard=False)
            return 0.0
        return min(5.0, 0.2 * 2.0 ** failures)
