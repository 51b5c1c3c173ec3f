"""The Redis store: every state transition is one Lua script, loaded once, typed here.

The worker's hot path and the process registry live here; recovery (promote,
reap) and administration (DLQ, cancel, quarantine, repair) are in their own
modules and mixed into the one ``Store`` class.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from queuectl.core.admin_ops import AdminOps
from queuectl.core.enqueueing import BulkEnqueueError, EnqueueOps
from queuectl.core.errors import ConflictError, LeaseLostError
from queuectl.core.policy import MAX_RETRY_DELAY
from queuectl.core.recovery import RecoveryOps
from queuectl.core.scripting import (
    QUARANTINED,
    EnqueueResult,
    FailOutcome,
    Fetched,
    Quarantined,
    as_str,
    check_reply,
    num,
)

__all__ = ["BulkEnqueueError", "EnqueueResult", "FailOutcome", "Fetched", "Finished",
           "Quarantined", "Store", "as_str", "check_reply", "num"]


def _fetched(reply: Sequence[Any]) -> Fetched:
    """The job of a fetch reply {1, notes, id, lease, ...} (fetch.lua's header)."""
    received = time.monotonic()
    timeout = float(as_str(reply[5]) or 0)
    ready = as_str(reply[10])
    return Fetched(
        id=as_str(reply[2]), lease=int(reply[3]), command=as_str(reply[4]),
        timeout=timeout if timeout > 0 else None, attempts=int(reply[6]),
        queue=as_str(reply[7]), trace_context=as_str(reply[8]), env=as_str(reply[9]),
        ready_at=float(ready) if ready else None, fetched_at=float(as_str(reply[11])),
        received=received,
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """What finish_fetch did: the outcome written (``failed`` None for a completion) and the
    next job. ``next`` None with ``empty`` True: every queue was empty (go idle); with
    ``empty`` False: nothing was fetched (call ``fetch``)."""

    failed: FailOutcome | None
    next: Fetched | None
    empty: bool


class Store(EnqueueOps, RecoveryOps, AdminOps):
    """Typed access to QueueCTL's scripts; every method is safe to call from many threads."""

    # -- the worker's hot path ------------------------------------------------------
    def _fetch_call(self, worker_id: str, queues: Sequence[str], tag: str,
                    alive: bool = False) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [k.inflight(worker_id), k.job_prefix, k.quarantine, k.quarantine_why,
                k.wakeup(worker_id), k.worker(worker_id)]
        keys += [k.queue(q) for q in queues] + [k.wake(q) for q in queues]
        return keys, [worker_id, len(queues), num(self.policy.job_timeout), tag,
                      "1" if alive else "0"]

    def fetch(self, worker_id: str, queues: Sequence[str], tag: str = "", *,
              alive: bool = False) -> Fetched | None:
        """Lease the next job of the first non-empty queue, or return None. ``tag``, the
        caller's number for the call, is kept in the job's record (``fetch_tag``);
        ``alive``: only while the worker's status hash exists (fetch.lua)."""
        keys, args = self._fetch_call(worker_id, queues, tag, alive)
        while True:
            reply = self._run("fetch", keys, args)
            self.notes(reply[1])
            if int(reply[0]) != 2:
                break
        if int(reply[0]) == 0:
            return None
        return _fetched(reply)

    def wait_fetch(self, worker_id: str, queues: Sequence[str], timeout: float,
                   tag: str = "") -> Fetched | None:
        """Wait up to ``timeout`` seconds for a wake marker of ``queues`` (or the worker's
        wakeup list), then fetch, in one round trip: the fetch goes out behind the BLPOP,
        and Redis runs it the moment the BLPOP returns, marker or not.

        The fetch may run long after it was sent, so it takes a job only while the worker
        counts as alive (its status hash exists: fetch.lua). A wake list of the wrong type
        raises its WRONGTYPE error, unless the fetch that followed leased a job, which is
        returned (a job leased is never dropped)."""
        k = self.keys
        keys, args = self._fetch_call(worker_id, queues, tag, alive=True)
        script = self._script("fetch")
        pipe = self.server_pipeline()
        pipe.blpop([k.wakeup(worker_id)] + [k.wake(q) for q in queues], timeout=timeout)
        # EVALSHA itself, not the Script: a Script in a pipeline costs a SCRIPT EXISTS
        # round trip at every execute.
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        woke, reply = pipe.execute(raise_on_error=False)
        if isinstance(reply, redis.exceptions.NoScriptError):
            # Not run (the scripts were flushed): the plain call loads it again.
            return self.fetch(worker_id, queues, tag, alive=True)
        if isinstance(reply, Exception):
            raise reply
        reply = check_reply(reply)
        self.notes(reply[1])
        if int(reply[0]) == 1:
            return _fetched(reply)
        if isinstance(woke, Exception):
            raise woke
        return self.fetch(worker_id, queues, tag, alive=True) if int(reply[0]) == 2 else None

    def _finish_code(self, job: Fetched, reply: Sequence[Any]) -> int:
        code = int(reply[0])
        if code == QUARANTINED:
            raise Quarantined(f"job {job.id} moved to quarantine: {as_str(reply[1])}")
        if code in (-1, -3):
            raise LeaseLostError(f"lease on job {job.id} was lost")
        return code

    def finish_fetch(self, job: Fetched, worker_id: str, chunk: bytes, produced: int,
                     spawned_at: float | None, failure: tuple[int | None, str] | None,
                     queues: Sequence[str], tag: str = "") -> Finished:
        """Record a held job's outcome (a completion, or ``failure`` = (exit code, error)) and
        lease the next job of ``queues`` in the same script call (finish_fetch.lua);
        raises as complete and fail do. ``queues`` empty: the outcome only."""
        k, p = self.keys, self.policy
        keys = [k.job(job.id), k.inflight(worker_id), k.log(job.id), k.stats, k.quarantine,
                k.quarantine_why, k.queues, k.completed, k.index(job.queue, "completed"),
                k.retry_queue, k.dead_letter, k.scheduler_wake, k.index(job.queue, "failed"),
                k.index(job.queue, "dead"), k.job_prefix]
        keys += [k.queue(q) for q in queues] + [k.wake(q) for q in queues]
        code, error = failure if failure is not None else (None, "")
        args = [job.id, worker_id, job.lease, chunk, produced, self.log_cap, job.queue,
                num(spawned_at), "complete" if failure is None else "fail",
                "" if code is None else code, error,
                p.max_retries, num(p.backoff_base), num(p.backoff_factor), num(p.backoff_max),
                MAX_RETRY_DELAY, num(p.backoff_jitter),
                repr(random.random()),  # noqa: S311 - spreads retries, guards nothing
                len(queues), num(p.job_timeout), tag]
        reply = self._run_confirmed("finish_fetch", keys, args,
                                    f"the outcome of job {job.id} was", strict=False)
        outcome = self._finish_code(job, reply)
        failed = None
        if failure is not None:
            failed = FailOutcome(dead=outcome == 2,
                                 retry_at=float(as_str(reply[1])) if outcome == 1 else None)
        nxt = reply[2]
        # A fetch step refused (NOPERM) is left to the caller's next fetch, which raises it:
        # the outcome is written either way.
        if not nxt or int(nxt[0]) < 0:
            return Finished(failed, None, empty=False)
        self.notes(nxt[1])
        if int(nxt[0]) == 1:
            return Finished(failed, _fetched(nxt), empty=False)
        return Finished(failed, None, empty=int(nxt[0]) == 0)

    def complete(self, job: Fetched, worker_id: str, chunk: bytes, produced: int,
                 spawned_at: float | None = None) -> None:
        """Mark a held job completed; LeaseLostError if the lease was taken over,
        Quarantined if the job had to be set aside instead."""
        k = self.keys
        # A finish a failover undoes is not lost: the job reappears in this worker's
        # in-flight set and reconcile hands it back (it runs again). Waiting for replicas
        # only makes that rarer, so a short count is a warning.
        reply = self._run_confirmed(
            "complete",
            [k.job(job.id), k.inflight(worker_id), k.completed, k.log(job.id), k.stats,
             k.quarantine, k.quarantine_why, k.index(job.queue, "completed"), k.queues],
            [job.id, worker_id, job.lease, chunk, produced, self.log_cap, job.queue,
             num(spawned_at)],
            f"the completion of job {job.id} was", strict=False,
        )
        self._finish_code(job, reply)

    def fail(self, job: Fetched, worker_id: str, chunk: bytes, produced: int,
             exit_code: int | None, error: str,
             spawned_at: float | None = None) -> FailOutcome:
        """Record a failed run; the script schedules the retry or buries the job."""
        k, p = self.keys, self.policy
        reply = self._run_confirmed(
            "fail",
            [k.job(job.id), k.inflight(worker_id), k.retry_queue, k.dead_letter,
             k.log(job.id), k.stats, k.scheduler_wake, k.quarantine, k.quarantine_why,
             k.index(job.queue, "failed"), k.index(job.queue, "dead"), k.queues],
            [job.id, worker_id, job.lease, chunk, produced, self.log_cap,
             "" if exit_code is None else exit_code, error,
             p.max_retries, num(p.backoff_base), num(p.backoff_factor), num(p.backoff_max),
             MAX_RETRY_DELAY, job.queue, num(p.backoff_jitter),
             repr(random.random()),  # noqa: S311 - spreads retries, guards nothing
             num(spawned_at)],
            f"the failure of job {job.id} was", strict=False,
        )
        if self._finish_code(job, reply) == 1:
            return FailOutcome(dead=False, retry_at=float(as_str(reply[1])))
        return FailOutcome(dead=True, retry_at=None)

    def log_append(self, job: Fetched, worker_id: str, chunk: bytes, produced: int) -> None:
        """Ship output of a running job; raises LeaseLostError if it was taken over."""
        k = self.keys
        reply = self._run("log_append", [k.job(job.id), k.log(job.id)],
                          [job.id, worker_id, job.lease, chunk, produced, self.log_cap])
        code = int(reply[0])
        if code == -2:
            self.notes([f"job {job.id}: output not shipped: {as_str(reply[1])}"])
        elif code != 0:
            raise LeaseLostError(f"lease on job {job.id} was lost")

    def release(self, job: Fetched, worker_id: str,
                why: str = "interrupted by worker shutdown") -> None:
        """Hand a held job back to the front of its queue; the run spends no retry."""
        k = self.keys
        queue = job.queue
        for _ in range(3):
            reply = self._run(
                "release",
                [k.job(job.id), k.inflight(worker_id), k.queue(queue), k.wake(queue),
                 k.quarantine, k.quarantine_why, k.queues],
                [job.id, worker_id, job.lease, why, queue],
            )
            if int(reply[0]) != -4:
                self._finish_code(job, reply)
                return
            # The record names another queue than the caller knew: build its keys again.
            queue = self.queue_of(job.id)
        raise LeaseLostError(f"job {job.id} kept changing queues")

    # -- process registry -----------------------------------------------------------------
    def heartbeat(self, status_key: str, registry: str, member: str, ttl: float,
                  instance: str, fields: dict[str, str]) -> float:
        """Claim or refresh a status hash; returns the server time.

        Raises ConflictError when a live process holds ``member`` under another
        instance token (two processes were given one id).
        """
        args: list[str] = [member, str(max(1, int(ttl * 1000))), instance]
        for name, value in fields.items():
            args += [name, value]
        reply = self._run("heartbeat", [status_key, registry], args)
        if int(reply[0]) == -4:
            host, pid = as_str(reply[1]) or "?", as_str(reply[2]) or "?"
            raise ConflictError(f"id {member} is held by a live process (pid {pid} on {host})")
        return float(as_str(reply[1]))

    def unregister_worker(self, worker_id: str, instance: str) -> int:
        """Drop a stopped worker's status; returns jobs still held (then nothing is dropped)."""
        k = self.keys
        reply = self._run(
            "unregister",
            [k.worker(worker_id), k.workers, k.inflight(worker_id), k.control(worker_id),
             k.wakeup(worker_id)],
            [worker_id, instance],
        )
        return max(0, int(reply[0]))
