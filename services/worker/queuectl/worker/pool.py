"""The worker pool: N threads, each fetching and running one job at a time.

Each thread fetches for itself only when it is free, so a worker never takes
more jobs than it can start; an idle thread blocks on the queues' wake lists
(and on the worker's own wakeup list, used at shutdown) instead of polling.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

import redis

from queuectl.core.errors import InvalidInputError, LeaseLostError
from queuectl.core.settings import LogTarget, Settings
from queuectl.core.store import Fetched, Quarantined, Store, as_str
from queuectl.worker.executor import ExecConfig, Execution
from queuectl.worker.heartbeat import Heartbeat, status_fields
from queuectl.worker.jobenv import base_env
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import Ending, RunResult, describe
from queuectl.worker.remains import ProcessControl

log = logging.getLogger("queuectl.worker")
MAX_BACKOFF = 5.0


def default_worker_id() -> str:
    # The random part keeps ids unique when a container restarts with the same hostname and pid.
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Worker:
    """One worker process: ``count`` job threads over ``queues`` in strict priority order."""

    def __init__(self, store: Store, settings: Settings, count: int, queues: list[str]) -> None:
        self.store = store
        self.settings = settings
        self.count = count
        self.queues = queues
        self.id = settings.worker_id or default_worker_id()
        self.stopping = threading.Event()
        self.hard = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[int, Execution] = {}
        # Jobs this process holds, from the fetch reply until the outcome is written.
        self._held: dict[str, Fetched] = {}
        self._fetching = 0
        self.processed = 0
        self.failed = 0
        self._threads: list[threading.Thread] = []
        self._logs = (LogDir(settings.resolved_log_dir)
                      if settings.log_target is not LogTarget.STDOUT else None)
        self._procs = ProcessControl(settings.kill_grace)
        self._cfg = ExecConfig(self.id, self._logs, settings.log_target, store.log_cap,
                               self._procs, base_env(settings))
        # Tells this process apart from any other that was given the same worker id.
        self.instance = secrets.token_hex(8)
        self._heartbeat = Heartbeat(store, self.id, self.instance, settings.heartbeat_interval,
                                    settings.worker_ttl, self._status, self.request_stop,
                                    self._done, self.reconcile)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self._logs is not None:
            try:
                self._logs.open()
            except OSError as exc:
                raise InvalidInputError(f"cannot use log directory {self._logs.path}: "
                                        f"{describe(exc)}") from None
        self._procs.setup(self.settings.job_cgroup)
        self._heartbeat.beat()
        self._heartbeat.start()
        for slot in range(self.count):
            thread = threading.Thread(target=self._slot, args=(slot,), name=f"job-{slot}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("worker %s started: %d threads on queues %s", self.id, self.count,
                 ",".join(self.queues))

    def request_stop(self) -> None:
        """Stop fetching; running jobs finish. Safe to call more than once, from any thread."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        log.info("stopping: no new jobs; waiting for %d running", len(self._running))
        try:
            # Idle threads block on the wake lists; one marker each wakes them now.
            key = self.store.keys.wakeup(self.id)
            pipe = self.store.redis.pipeline(transaction=False)
            pipe.rpush(key, *(["1"] * self.count))
            pipe.expire(key, 60)
            pipe.execute()
        except redis.RedisError:
            pass  # they wake within idle_wait anyway

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
        if self._logs is not None:
            self._logs.close()
        try:
            held = self.store.unregister_worker(self.id, self.instance)
        except redis.RedisError as exc:
            log.warning("could not unregister (%s); the heartbeat key expires by itself", exc)
            return 0
        if held:
            log.warning("%d job(s) still held; recovery will hand them back", held)
        log.info("worker %s stopped (%d processed, %d failed)", self.id, self.processed,
                 self.failed)
        return held

    def _status(self) -> dict[str, str]:
        with self._lock:
            current = [e.job.id for e in self._running.values()]
        state = "stopping" if self.stopping.is_set() else "running"
        return status_fields(self.count, self.queues, state, current, self.processed,
                             self.failed)

    # -- job threads ----------------------------------------------------------------------
    def _slot(self, slot: int) -> None:
        k = self.store.keys
        wake_keys = [k.wakeup(self.id)] + [k.wake(q) for q in self.queues]
        backoff = 0.1
        while not self.stopping.is_set():
            try:
                job = self._fetch()
                if job is None:
                    self.store.redis.blpop(wake_keys, timeout=self.settings.idle_wait)
                    continue
                backoff = 0.1
            except redis.RedisError as exc:
                log.warning("fetch failed (%s); retrying in %.1fs", exc, backoff)
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self._run(slot, job)

    def _fetch(self) -> Fetched | None:
        with self._lock:
            self._fetching += 1
        job = None
        try:
            job = self.store.fetch(self.id, self.queues)
            return job
        finally:
            with self._lock:
                self._fetching -= 1
                if job is not None:
                    self._held[job.id] = job

    def reconcile(self) -> None:
        """Hand back jobs leased to this worker whose fetch reply never arrived.

        If Redis ran a fetch but the reply was lost (a connection cut, a restart),
        the job sits in our in-flight set, marked processing by a live worker, so
        recovery would never take it; redis-py may even re-send the fetch and hand
        us the next job, so no error is seen. Run on every heartbeat, and only while
        no fetch is outstanding (under the lock every fetched job is in ``_held``),
        any id in the in-flight set that we do not hold is such an orphan.
        """
        with self._lock:
            if self._fetching:
                return
            members = self.store.redis.smembers(self.store.keys.inflight(self.id))
            orphans = {as_str(m) for m in members} - set(self._held)
        for job_id in orphans:
            lease, queue = self.store.redis.hmget(self.store.keys.job(job_id), ["lease", "queue"])
            token = as_str(lease or b"0")
            # A lease that does not parse marks a record release.lua sends to quarantine.
            ghost = Fetched(job_id, int(token) if token.isdigit() else -1, "", None, 0,
                            as_str(queue or b"default"), "")
            try:
                self.store.release(ghost, self.id, "the fetch reply was lost; handed back")
                log.warning("job %s was leased but the fetch reply was lost; handed back", job_id)
            except (LeaseLostError, Quarantined):
                pass

    def _ship(self, job: Fetched, chunk: bytes, produced: int) -> None:
        try:
            self.store.log_append(job, self.id, chunk, produced)
        except redis.RedisError as exc:
            # The bytes stay in the log file; only the Redis copy misses them.
            log.warning("could not ship output of %s (%s)", job.id, exc)

    def _run(self, slot: int, job: Fetched) -> None:
        execution = Execution(job, self._cfg, self._ship)
        with self._lock:
            self._running[slot] = execution
        if self.hard.is_set():
            execution.interrupt()
        try:
            result = execution.run()
        finally:
            with self._lock:
                del self._running[slot]
        try:
            self._report(job, result)
        finally:
            with self._lock:
                self._held.pop(job.id, None)

    def _report(self, job: Fetched, result: RunResult) -> None:
        """Write the outcome; retried until Redis takes it, so a result is never dropped."""
        backoff = 0.1
        while True:
            try:
                self._write_outcome(job, result)
                return
            except LeaseLostError:
                log.info("job %s was cancelled or taken over; its result is discarded", job.id)
                return
            except Quarantined as exc:
                log.warning("%s", exc)
                return
            except redis.RedisError as exc:
                log.warning("could not report job %s (%s); retrying in %.1fs", job.id, exc,
                            backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _write_outcome(self, job: Fetched, result: RunResult) -> None:
        if result.ending is Ending.LEASE_LOST:
            raise LeaseLostError(job.id)
        if result.ending is Ending.INTERRUPTED:
            self.store.release(job, self.id)
            log.info("job %s handed back to queue %s", job.id, job.queue)
            return
        if result.ending is Ending.ENVIRONMENT:
            # This host could not run it (full disk, no pids...): no retry is spent.
            self.store.release(job, self.id)
            log.warning("job %s handed back to queue %s: %s", job.id, job.queue, result.error)
            return
        if result.succeeded:
            self.store.complete(job, self.id, result.chunk, result.produced)
            self.processed += 1
            log.debug("job %s completed in %.3fs", job.id, result.seconds)
            return
        outcome = self.store.fail(job, self.id, result.chunk, result.produced,
                                  result.exit_code, result.error)
        self.processed += 1
        self.failed += 1
        if outcome.dead:
            log.warning("job %s failed (%s); no retries left: moved to the DLQ", job.id,
                        result.error)
        else:
            delay = (outcome.retry_at or 0) - time.time()
            log.info("job %s failed (%s); retry in %.1fs", job.id, result.error, delay)
