"""The Redis store: every state transition is one Lua script, loaded once, typed here."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from queuectl.core.errors import ConflictError, LeaseLostError, NotFoundError
from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import PolicyDefaults

SCRIPTS = (
    "enqueue", "fetch", "complete", "fail", "log_append", "promote",
    "dlq_retry", "cancel", "purge", "heartbeat", "unregister", "release", "reap",
)
PIPELINE_CHUNK = 1000


def as_str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A job a worker now holds, with the lease token every later write must present."""

    id: str
    lease: int
    command: str
    timeout: float | None
    attempts: int
    queue: str
    trace_context: str


@dataclass(frozen=True, slots=True)
class FailOutcome:
    dead: bool
    retry_at: float | None


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    id: str
    state: JobState | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReapResult:
    requeued: int
    buried: int


@dataclass(frozen=True, slots=True)
class PromoteResult:
    moved: int
    next_due: float | None
    now: float


class Store:
    """Typed access to QueueCTL's scripts over one redis client (``decode_responses=False``)."""

    def __init__(self, client: redis.Redis, keys: Keys, policy: PolicyDefaults,
                 log_cap: int = 65536) -> None:
        self.redis = client
        self.keys = keys
        self.policy = policy
        self.log_cap = log_cap
        folder = resources.files("queuectl.core") / "scripts"
        self._scripts = {
            name: client.register_script((folder / f"{name}.lua").read_text("utf-8"))
            for name in SCRIPTS
        }

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any],
             client: Any = None) -> Any:
        return self._scripts[name](keys=list(keys), args=list(args), client=client)

    # -- enqueue ----------------------------------------------------------------
    def _enqueue_call(self, spec: JobSpec, replace: bool, trace_context: str,
                      client: Any = None) -> Any:
        k = self.keys
        run_at = spec.run_at.timestamp() if spec.run_at is not None else None
        return self._run(
            "enqueue",
            [k.job(spec.id), k.queue(spec.queue), k.wake(spec.queue), k.delayed, k.queues,
             k.dead_letter, k.completed, k.cancelled, k.log(spec.id), k.scheduler_wake],
            [spec.id, spec.queue, spec.command, _num(spec.max_retries), _num(spec.timeout),
             _num(run_at), "1" if replace else "0", trace_context, secrets.token_hex(8)],
            client,
        )

    @staticmethod
    def _enqueue_result(job_id: str, reply: Sequence[Any]) -> EnqueueResult:
        code = int(reply[0])
        if code == 0:
            return EnqueueResult(job_id, JobState.PENDING)
        if code == 1:
            return EnqueueResult(job_id, JobState.SCHEDULED)
        state = as_str(reply[1])
        if code == -1:
            return EnqueueResult(job_id, None, f"job {job_id} already exists and is {state}")
        return EnqueueResult(
            job_id, None, f"job {job_id} already exists ({state}); use --replace to replace it"
        )

    def enqueue(self, spec: JobSpec, *, replace: bool = False,
                trace_context: str = "") -> JobState:
        """Store one job; raises ConflictError if its id is taken."""
        result = self._enqueue_result(spec.id, self._enqueue_call(spec, replace, trace_context))
        if result.state is None:
            raise ConflictError(result.error or "conflict")
        return result.state

    def enqueue_many(self, specs: Iterable[JobSpec], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """Store many jobs, pipelined in chunks; each job is still one atomic script call."""
        results: list[EnqueueResult] = []
        chunk: list[JobSpec] = []

        def flush() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for spec in chunk:
                self._enqueue_call(spec, replace, "", pipe)
            for spec, reply in zip(chunk, pipe.execute(), strict=True):
                results.append(self._enqueue_result(spec.id, reply))
            chunk.clear()

        for spec in specs:
            chunk.append(spec)
            if len(chunk) >= PIPELINE_CHUNK:
                flush()
        if chunk:
            flush()
        return results

    # -- the worker's hot path ------------------------------------------------------
    def fetch(self, worker_id: str, queues: Sequence[str]) -> Fetched | None:
        """Lease the next job of the first non-empty queue, or return None."""
        k = self.keys
        keys = [k.inflight(worker_id), k.config, k.job_prefix]
        keys += [k.queue(q) for q in queues] + [k.wake(q) for q in queues]
        reply = self._run("fetch", keys, [worker_id, len(queues), self.policy.job_timeout])
        if not reply:
            return None
        timeout = float(as_str(reply[3]) or 0)
        return Fetched(
            id=as_str(reply[0]), lease=int(reply[1]), command=as_str(reply[2]),
            timeout=timeout if timeout > 0 else None, attempts=int(reply[4]),
            queue=as_str(reply[5]), trace_context=as_str(reply[6]),
        )

    def complete(self, job: Fetched, worker_id: str, chunk: bytes, produced: int) -> None:
        """Mark a held job completed; raises LeaseLostError if the lease was taken over."""
        k = self.keys
        code = self._run(
            "complete",
            [k.job(job.id), k.inflight(worker_id), k.completed, k.log(job.id), k.stats, k.config],
            [job.id, worker_id, job.lease, chunk, produced, self.log_cap,
             self.policy.completed_ttl],
        )
        if int(code) != 0:
            raise LeaseLostError(f"lease on job {job.id} was lost")

    def fail(self, job: Fetched, worker_id: str, chunk: bytes, produced: int,
             exit_code: int | None, error: str) -> FailOutcome:
        """Record a failed run; the script schedules the retry or buries the job."""
        k, p = self.keys, self.policy
        reply = self._run(
            "fail",
            [k.job(job.id), k.inflight(worker_id), k.retry_queue, k.dead_letter, k.config,
             k.log(job.id), k.stats, k.scheduler_wake],
            [job.id, worker_id, job.lease, chunk, produced, self.log_cap,
             "" if exit_code is None else exit_code, error,
             p.max_retries, p.backoff_base, p.backoff_factor, p.backoff_max],
        )
        code = int(reply[0])
        if code == -1:
            raise LeaseLostError(f"lease on job {job.id} was lost")
        if code == 1:
            return FailOutcome(dead=False, retry_at=float(as_str(reply[1])))
        return FailOutcome(dead=True, retry_at=None)

    def log_append(self, job: Fetched, worker_id: str, chunk: bytes, produced: int) -> None:
        """Ship output of a running job; raises LeaseLostError if it was taken over."""
        k = self.keys
        code = self._run("log_append", [k.job(job.id), k.log(job.id)],
                         [job.id, worker_id, job.lease, chunk, produced, self.log_cap])
        if int(code) != 0:
            raise LeaseLostError(f"lease on job {job.id} was lost")

    def release(self, job: Fetched, worker_id: str) -> None:
        """Hand a held job back to the front of its queue without counting the attempt."""
        k = self.keys
        code = self._run(
            "release",
            [k.job(job.id), k.inflight(worker_id), k.queue(job.queue), k.wake(job.queue)],
            [job.id, worker_id, job.lease],
        )
        if int(code) != 0:
            raise LeaseLostError(f"lease on job {job.id} was lost")

    # -- scheduler ------------------------------------------------------------------
    def promote_due(self, batch: int) -> PromoteResult:
        """Move up to ``batch`` due retries and delayed jobs back onto their queues."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.zrange(k.retry_queue, 0, batch - 1, withscores=True)
        pipe.zrange(k.delayed, 0, batch - 1, withscores=True)
        (secs, micros), retry, delayed = pipe.execute()
        now = secs + micros / 1e6
        due = sorted(((s, as_str(m)) for m, s in [*retry, *delayed] if s <= now))[:batch]
        ids = [job_id for _, job_id in due]
        keys = [k.retry_queue, k.delayed, *self._job_queue_keys(ids)]
        moved, next_due, server_now = self._run("promote", keys, ids)
        nd = as_str(next_due)
        return PromoteResult(int(moved), float(nd) if nd else None, float(as_str(server_now)))

    def _job_queue_keys(self, ids: Sequence[str]) -> list[str]:
        """(job hash, queue list, wake list) for each id, for scripts that move jobs
        onto queues they cannot know in advance; each script re-checks the record."""
        if not ids:
            return []
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(k.job(job_id), "queue")
        keys: list[str] = []
        for job_id, queue in zip(ids, pipe.execute(), strict=True):
            # A vanished record has no queue: the scripts just drop its entry.
            q = as_str(queue) if queue else "default"
            keys += [k.job(job_id), k.queue(q), k.wake(q)]
        return keys

    # -- recovery -------------------------------------------------------------------------
    def dead_workers(self, ttl: float) -> list[str]:
        """Registered workers whose last heartbeat is older than ``ttl`` (by Redis's clock)."""
        secs, micros = self.redis.time()
        cutoff = secs + micros / 1e6 - ttl
        return [as_str(w) for w in self.redis.zrangebyscore(self.keys.workers, "-inf", cutoff)]

    def reap_worker(self, worker_id: str, ttl: float) -> ReapResult | None:
        """Hand a dead worker's jobs back; None if it turned out to be alive."""
        k = self.keys
        requeued = buried = 0
        while True:
            members: Any = self.redis.srandmember(k.inflight(worker_id), PIPELINE_CHUNK)
            ids = [as_str(i) for i in members]
            keys = [k.workers, k.inflight(worker_id), k.worker(worker_id), k.control(worker_id),
                    k.wakeup(worker_id), k.dead_letter, k.config, k.stats,
                    *self._job_queue_keys(ids)]
            reply = self._run("reap", keys, [worker_id, ttl, self.policy.max_lost, *ids])
            if int(reply[0]) == -1:
                return None
            requeued += int(reply[0])
            buried += int(reply[1])
            if int(reply[2]) == 0 or not ids:
                return ReapResult(requeued, buried)

    # -- admin transitions ------------------------------------------------------------
    def dlq_retry(self, ids: Sequence[str]) -> int:
        """Requeue dead jobs with fresh retries; returns how many moved."""
        k = self.keys
        moved = 0
        for start in range(0, len(ids), PIPELINE_CHUNK):
            part = list(ids[start:start + PIPELINE_CHUNK])
            keys = [k.dead_letter, *self._job_queue_keys(part)]
            moved += int(self._run("dlq_retry", keys, part))
        return moved

    def cancel(self, job_id: str) -> JobState:
        """Cancel a job that has not ended; returns the state it was in."""
        k = self.keys
        for _ in range(10):
            queue, worker = self.redis.hmget(k.job(job_id), ["queue", "worker"])
            q = as_str(queue) if queue else "default"
            w = as_str(worker) if worker else ""
            reply = self._run(
                "cancel",
                [k.job(job_id), k.queue(q), k.retry_queue, k.delayed,
                 k.inflight(w) if w else k.inflight("-"), k.cancelled, k.config,
                 k.log(job_id)],
                [job_id, w, self.policy.completed_ttl],
            )
            code = int(reply[0])
            if code == 0:
                return JobState(as_str(reply[1]))
            if code == -1:
                raise NotFoundError(f"no job {job_id}")
            if code == -2:
                raise ConflictError(f"job {job_id} has already ended ({as_str(reply[1])})")
        raise ConflictError(f"job {job_id} kept changing workers; try again")

    def purge_dlq(self) -> int:
        """Delete every dead job; returns how many were deleted."""
        k = self.keys
        total = 0
        while True:
            ids = [as_str(i) for i in self.redis.lrange(k.dead_letter, 0, PIPELINE_CHUNK - 1)]
            if not ids:
                return total
            keys = [k.dead_letter]
            for job_id in ids:
                keys += [k.job(job_id), k.log(job_id)]
            removed = int(self._run("purge", keys, ids))
            if removed == 0:
                return total
            total += removed

    # -- process registry -----------------------------------------------------------------
    def heartbeat(self, status_key: str, registry: str, member: str, ttl: float,
                  fields: dict[str, str]) -> float:
        args: list[str] = [member, str(int(ttl * 1000))]
        for name, value in fields.items():
            args += [name, value]
        return float(as_str(self._run("heartbeat", [status_key, registry], args)))

    def unregister_worker(self, worker_id: str) -> int:
        """Drop a stopped worker's status; returns jobs still held (then nothing is dropped)."""
        k = self.keys
        return int(self._run(
            "unregister",
            [k.worker(worker_id), k.workers, k.inflight(worker_id), k.control(worker_id),
             k.wakeup(worker_id)],
            [worker_id],
        ))
