"""What a worker tells Redis about the jobs it holds: fetches, output, outcomes, hand-backs.

A result is written through outages (retried with back-off until Redis takes
it), so it is never dropped while the worker lives; at a hard stop it is given
up only when Redis is away, and the job, still in the worker's in-flight set,
is then handed back by recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from queuectl.core.errors import (
    EXIT_DATA,
    EXIT_REDIS,
    DataError,
    LeaseLostError,
    RedisRefusedError,
)
from queuectl.core.logs import job_extra
from queuectl.core.models import stored_count
from queuectl.core.resilience import Backoff, BackoffMonitor
from queuectl.core.store import FailOutcome, Fetched, Finished, Quarantined, Store, as_str
from queuectl.core.tracecontext import trace_id_of
from queuectl.worker.outcome import Ending, RunResult

log = logging.getLogger("queuectl.worker")


@dataclass(frozen=True, slots=True)
class Next:
    """What a report fetched for its slot: a job, or ``empty`` (every queue was empty: the
    slot goes idle); neither when nothing was fetched (the slot calls fetch)."""

    job: Fetched | None = None
    empty: bool = False


NOTHING = Next()
IDLE = Next(empty=True)  # every queue was empty at the last fetch


class Supervisor(Protocol):
    def fail(self, reason: str, code: int, *, hard: bool = True) -> None: ...


class Reporter:
    """The worker's writes about its jobs, and the set of jobs it holds."""

    def __init__(self, store: Store, worker_id: str, queues: list[str], url: str,
                 hard: threading.Event, supervisor: Supervisor,
                 monitor: BackoffMonitor | None = None) -> None:
        self.store = store
        self.monitor = monitor
        self.worker_id = worker_id
        self.queues = queues
        self.url = url
        self.hard = hard
        self.supervisor = supervisor
        self.processed = 0
        self.failed = 0
        self._lock = threading.Lock()
        # Jobs this process holds, from the fetch reply until the outcome is written.
        self._held: dict[str, Fetched] = {}
        # Every call that may lease a job gets the next number, kept in the job's record
        # (fetch_tag); _calls holds the numbers of the calls whose reply is still awaited.
        self._tag = 0
        self._calls: set[int] = set()

    def _call(self) -> int:
        with self._lock:
            self._tag += 1
            self._calls.add(self._tag)
            return self._tag

    def _answered(self, tag: int, job: Fetched | None) -> None:
        with self._lock:
            self._calls.discard(tag)
            if job is not None:
                self._held[job.id] = job

    def fetch(self) -> Fetched | None:
        """Lease the next job of our queues (see Store.fetch), remembering that we hold it."""
        tag, job = self._call(), None
        try:
            job = self.store.fetch(self.worker_id, self.queues, str(tag), alive=True)
            return job
        finally:
            self._answered(tag, job)

    def wait_fetch(self, timeout: float) -> Fetched | None:
        """Wait for work and lease it in one round trip (see Store.wait_fetch)."""
        tag, job = self._call(), None
        try:
            job = self.store.wait_fetch(self.worker_id, self.queues, timeout, str(tag))
            return job
        finally:
            self._answered(tag, job)

    def ship(self, job: Fetched, chunk: bytes, produced: int) -> None:
        """Ship a running job's output; LeaseLostError (from the store) stops the job."""
        try:
            self.store.log_append(job, self.worker_id, chunk, produced)
        except (redis.RedisError, DataError) as exc:
            # The bytes stay in the log file; only the Redis copy misses them.
            if self.monitor is not None:
                self.monitor.failed("ship", exc, outage=False)
            self.store.notes([f"could not ship output of {job.id} ({exc})"])

    def report(self, job: Fetched, result: RunResult, fetch_next: bool = False) -> tuple[str, Next]:
        """Write the outcome through outages; never raises. Returns what became of the job
        (one of queuectl.core.metrics.OUTCOMES) and, when ``fetch_next`` asks for it and
        the run ended with a result, the next job, leased in the same script call."""
        backoff = Backoff(f"report {job.id}", self.url, self.hard, log, self.monitor)
        outcome = "failed"  # a failed run whose next step is unknown
        nxt = NOTHING
        try:
            written = backoff.call(lambda: self._write_outcome(job, result, fetch_next))
            if written is None:
                log.warning("job %s: Redis is away and the worker is stopping: its outcome is "
                            "not written; recovery hands it back", job.id)
                outcome = "interrupted"
            else:
                outcome, nxt = written
        except LeaseLostError:
            log.info("job %s was cancelled or taken over; its result is discarded", job.id)
            outcome = "cancelled"
        except Quarantined as exc:
            log.warning("%s", exc)
        except RedisRefusedError as exc:
            self.supervisor.fail(str(exc), EXIT_REDIS)
        except DataError as exc:
            # Our own in-flight set, or the quarantine itself, is unusable.
            self.supervisor.fail(f"cannot report job {job.id}: {exc}", EXIT_DATA)
        except Exception:
            log.exception("job %s: its outcome could not be written; reconciling hands it "
                          "back", job.id)
        finally:
            with self._lock:
                self._held.pop(job.id, None)
        return outcome, nxt

    def _finish_fetch(self, job: Fetched, result: RunResult, spawned: float | None) -> Finished:
        """finish_fetch, a call that may lease a job like fetch (see reconcile)."""
        failure = None if result.succeeded else (result.exit_code, result.error)
        tag, done = self._call(), None
        try:
            done = self.store.finish_fetch(job, self.worker_id, result.chunk, result.produced,
                                           spawned, failure, self.queues, str(tag))
            return done
        finally:
            self._answered(tag, done.next if done is not None else None)

    def _write_outcome(self, job: Fetched, result: RunResult,
                       fetch_next: bool) -> tuple[str, Next]:
        if result.ending is Ending.LEASE_LOST:
            raise LeaseLostError(job.id)
        if result.ending is Ending.INTERRUPTED:
            self.store.release(job, self.worker_id)
            log.info("job %s handed back to queue %s", job.id, job.queue)
            return "interrupted", NOTHING
        if result.ending is Ending.ENVIRONMENT:
            # This host could not run it (full disk, no pids...): no retry is spent.
            self.store.release(job, self.worker_id, f"not run on this host: {result.error}")
            log.warning("job %s handed back to queue %s: %s", job.id, job.queue, result.error)
            return "interrupted", NOTHING
        nxt = NOTHING
        spawned = job.server_time(result.spawned) if result.spawned is not None else None
        if fetch_next:
            done = self._finish_fetch(job, result, spawned)
            nxt = Next(done.next, empty=done.empty)
            failed = done.failed
        elif result.succeeded:
            self.store.complete(job, self.worker_id, result.chunk, result.produced, spawned)
            failed = None
        else:
            failed = self.store.fail(job, self.worker_id, result.chunk, result.produced,
                                     result.exit_code, result.error, spawned)
        self.processed += 1
        if failed is None:
            log.debug("job %s completed in %.3fs", job.id, result.seconds)
            return "succeeded", nxt
        return self._failed(job, result, failed), nxt

    def _failed(self, job: Fetched, result: RunResult, outcome: FailOutcome) -> str:
        self.failed += 1
        if outcome.dead:
            log.warning("job %s failed (%s); no retries left: moved to the DLQ", job.id,
                        result.error)
            return "dead"
        delay = (outcome.retry_at or 0) - time.time()
        log.info("job %s failed (%s); retry in %.1fs", job.id, result.error, delay)
        return "timeout" if result.ending is Ending.TIMED_OUT else "retried"

    def reconcile(self) -> None:
        """Hand back jobs leased to this worker whose fetch reply never arrived.

        If Redis ran a fetch but the reply was lost (a connection cut, a restart),
        the job sits in our in-flight set, marked processing by a live worker, so
        recovery would never take it; redis-py may even re-send the fetch and hand
        us the next job, so no error is seen. Run on every heartbeat: an id in the
        in-flight set that we do not hold is such an orphan, unless the call that
        leased it (its record's ``fetch_tag``) is still awaiting its reply, or began
        after we looked: an idle slot's fetch waits behind its BLPOP for seconds.
        """
        r, k = self.store.redis, self.store.keys
        with self._lock:
            held, awaited, last = set(self._held), set(self._calls), self._tag
        members = r.smembers(k.inflight(self.worker_id))
        for job_id in sorted({as_str(m) for m in members} - held):
            try:
                lease, queue, attempts, context, tag = r.hmget(
                    k.job(job_id), ["lease", "queue", "attempts", "trace_context", "fetch_tag"])
            except redis.ResponseError:
                # not a hash: release.lua quarantines it
                lease = queue = attempts = context = tag = None
            call = stored_count(as_str(tag) if tag else None)
            if call is not None and (call in awaited or call > last):
                continue  # its reply is on its way
            token = stored_count(as_str(lease or b"0"))
            # A lease that does not parse marks a record release.lua sends to quarantine.
            ghost = Fetched(job_id, -1 if token is None else token,
                            "", None, 0, self.store.queue_of(job_id) if queue else "default", "")
            try:
                self.store.release(ghost, self.worker_id, "the fetch reply was lost; handed back")
                run = stored_count(as_str(attempts) if attempts else None)
                log.warning("job %s was leased but the fetch reply was lost; handed back", job_id,
                            extra=job_extra(job_id, ghost.queue, run,
                                            trace_id_of(as_str(context) if context else None)))
            except LeaseLostError:
                pass
            except Quarantined as exc:
                log.warning("%s", exc)
