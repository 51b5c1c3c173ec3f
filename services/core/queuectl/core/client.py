"""The Python client: what applications and the CLI use to talk to QueueCTL.

    from queuectl.core.client import Client
    from queuectl.core.settings import Settings

    client = Client.connect(Settings())
    job = client.enqueue("echo hello", max_retries=2)
    print(client.wait([job.id])[job.id].state)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from queuectl.core import policy as policy_keys
from queuectl.core.connection import open_store
from queuectl.core.errors import (
    InvalidInputError,
    NotFoundError,
    WaitTimeoutError,
)
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.models import Job, JobSpec, JobState, check_job_id
from queuectl.core.settings import Settings
from queuectl.core.store import EnqueueResult, Store, as_str


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    alive: bool
    last_beat: float
    fields: dict[str, str]
    inflight: list[str]


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    pending: int
    completed: int
    failed: int
    dead: int


@dataclass(slots=True)
class Status:
    states: dict[str, int]
    queues: list[QueueStats]
    workers: list[WorkerInfo]
    schedulers: dict[str, float] = field(default_factory=dict)
    server_time: float = 0.0


@dataclass(frozen=True, slots=True)
class LogTail:
    data: bytes
    total: int
    state: JobState


class Client:
    """Typed operations over one Store; every method is safe to call from many threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys
        self.redis = store.redis

    @classmethod
    def connect(cls, settings: Settings) -> Client:
        return cls(open_store(settings))

    # -- enqueue ------------------------------------------------------------------
    def enqueue(self, command: str, *, job_id: str | None = None, queue: str = DEFAULT_QUEUE,
                max_retries: int | None = None, timeout: float | None = None,
                run_at: datetime | None = None, delay: float | None = None,
                replace: bool = False) -> Job:
        """Validate and store one job; returns its record."""
        if delay is not None:
            run_at = datetime.now(UTC) + timedelta(seconds=delay)
        data: dict[str, object] = {"command": command, "queue": queue}
        for name, value in (("id", job_id), ("max_retries", max_retries),
                            ("timeout", timeout), ("run_at", run_at)):
            if value is not None:
                data[name] = value
        from queuectl.core.models import spec_from_mapping

        spec = spec_from_mapping(data)
        self.store.enqueue(spec, replace=replace)
        return self.get(spec.id)

    def enqueue_spec(self, spec: JobSpec, *, replace: bool = False) -> JobState:
        return self.store.enqueue(spec, replace=replace)

    def enqueue_many(self, specs: Iterable[JobSpec], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """Store many jobs in pipelined batches; one result per job, in order."""
        return self.store.enqueue_many(specs, replace=replace)

    # -- reading ---------------------------------------------------------------------
    def find(self, job_id: str) -> Job | None:
        raw = self.redis.hgetall(self.keys.job(check_job_id(job_id)))
        return Job.from_hash({as_str(k): as_str(v) for k, v in raw.items()}) if raw else None

    def get(self, job_id: str) -> Job:
        job = self.find(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def _load(self, ids: Sequence[str]) -> list[Job]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.keys.job(job_id))
        return [
            Job.from_hash({as_str(k): as_str(v) for k, v in raw.items()})
            for raw in pipe.execute() if raw
        ]

    def queue_names(self) -> list[str]:
        names = {as_str(q) for q in self.redis.smembers(self.keys.queues)}
        names.add(DEFAULT_QUEUE)
        return sorted(names)

    def _ids_in_state(self, state: JobState, queue: str | None, limit: int) -> list[str]:
        k, r = self.keys, self.redis
        if state is JobState.PENDING:
            queues = [queue] if queue else self.queue_names()
            return [as_str(i) for q in queues for i in r.lrange(k.queue(q), 0, limit - 1)]
        if state is JobState.PROCESSING:
            return [i for w in self.workers() for i in w.inflight]
        source: Callable[[], Any] = {
            JobState.SCHEDULED: lambda: r.zrange(k.delayed, 0, -1),
            JobState.FAILED: lambda: r.zrange(k.retry_queue, 0, -1),
            JobState.DEAD: lambda: r.lrange(k.dead_letter, 0, -1),
            JobState.COMPLETED: lambda: r.zrevrange(k.completed, 0, -1),
            JobState.CANCELLED: lambda: r.zrevrange(k.cancelled, 0, -1),
        }[state]
        return [as_str(i) for i in source()]

    def list_jobs(self, state: JobState | None = None, queue: str | None = None,
                  limit: int = 50) -> list[Job]:
        """Jobs in one state (or every state), optionally of one queue, up to ``limit``."""
        states = [state] if state else list(JobState)
        out: list[Job] = []
        for st in states:
            ids = self._ids_in_state(st, queue, limit)
            for start in range(0, len(ids), 500):
                for job in self._load(ids[start:start + 500]):
                    if job.state is st and (queue is None or job.queue == queue):
                        out.append(job)
                        if len(out) >= limit:
                            return out
        return out

    def workers(self) -> list[WorkerInfo]:
        k = self.keys
        scored: Any = self.redis.zrange(k.workers, 0, -1, withscores=True)
        entries = [(as_str(m), float(s)) for m, s in scored]
        pipe = self.redis.pipeline(transaction=False)
        for worker_id, _ in entries:
            pipe.hgetall(k.worker(worker_id))
            pipe.smembers(k.inflight(worker_id))
        replies = pipe.execute()
        out = []
        for i, (worker_id, beat) in enumerate(entries):
            raw, held = replies[2 * i], replies[2 * i + 1]
            out.append(WorkerInfo(
                id=worker_id, alive=bool(raw), last_beat=beat,
                fields={as_str(a): as_str(b) for a, b in raw.items()},
                inflight=sorted(as_str(j) for j in held),
            ))
        return out

    def status(self) -> Status:
        """Counts by state and by queue, workers and schedulers."""
        k = self.keys
        queues = self.queue_names()
        workers = self.workers()
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for q in queues:
            pipe.llen(k.queue(q))
        pipe.zcard(k.delayed)
        pipe.zcard(k.retry_queue)
        pipe.llen(k.dead_letter)
        pipe.hgetall(k.stats)
        pipe.hget(k.config, "completed-ttl")
        pipe.zrange(k.schedulers, 0, -1, withscores=True)
        replies = pipe.execute()
        secs, micros = replies[0]
        now = secs + micros / 1e6
        pending = [int(n) for n in replies[1:1 + len(queues)]]
        scheduled, failed, dead, raw_stats, ttl_raw, scheds = replies[1 + len(queues):]
        ttl = float(as_str(ttl_raw)) if ttl_raw else float(self.store.policy.completed_ttl)
        since = now - ttl if ttl > 0 else "-inf"
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(k.completed, since, "+inf")
        pipe.zcount(k.cancelled, since, "+inf")
        completed, cancelled = pipe.execute()
        stats = {as_str(a): int(b) for a, b in raw_stats.items()}
        states = {
            JobState.PENDING.value: sum(pending),
            JobState.SCHEDULED.value: int(scheduled),
            JobState.PROCESSING.value: sum(len(w.inflight) for w in workers),
            JobState.FAILED.value: int(failed),
            JobState.DEAD.value: int(dead),
            JobState.COMPLETED.value: int(completed),
            JobState.CANCELLED.value: int(cancelled),
        }
        qstats = [
            QueueStats(q, n, stats.get(f"completed:{q}", 0), stats.get(f"failed:{q}", 0),
                       stats.get(f"dead:{q}", 0))
            for q, n in zip(queues, pending, strict=True)
        ]
        return Status(states, qstats, workers,
                      {as_str(m): float(s) for m, s in scheds}, now)

    def logs(self, job_id: str) -> LogTail:
        """The stored tail of a job's output and how many bytes it produced in all."""
        # One MULTI: a follower derives the new bytes from total and tail, so both must
        # come from the same moment (a chunk shipped in between would be printed twice).
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.job(check_job_id(job_id)))
        pipe.get(self.keys.log(job_id))
        raw, data = pipe.execute()
        if not raw:
            raise NotFoundError(f"no job {job_id}")
        job = Job.from_hash({as_str(k): as_str(v) for k, v in raw.items()})
        return LogTail(bytes(data or b""), job.log_size, job.state)

    def log_kept(self, job_id: str) -> int:
        """How many bytes of the job's output are stored (the tail ``logs`` prints)."""
        kept: Any = self.redis.strlen(self.keys.log(check_job_id(job_id)))
        return int(kept)

    def server_info(self) -> dict[str, str]:
        """A few INFO fields of the Redis server (version, mode, uptime, persistence, memory)."""
        info: Any = self.redis.info()
        wanted = ("redis_version", "redis_mode", "process_id", "uptime_in_seconds",
                  "aof_enabled", "used_memory_human", "connected_clients")
        return {name: str(info[name]) for name in wanted if name in info}

    # -- waiting and cancelling ---------------------------------------------------------
    def wait(self, ids: Sequence[str], timeout: float | None = None,
             poll: float = 0.1) -> dict[str, Job]:
        """Block until every job has ended; raises WaitTimeoutError past ``timeout``."""
        for job_id in ids:
            self.get(job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        ended: dict[str, Job] = {}
        while True:
            for job in self._load([i for i in ids if i not in ended]):
                if job.state.ended:
                    ended[job.id] = job
            missing = [i for i in ids if i not in ended and self.find(i) is None]
            if missing:
                raise NotFoundError(f"job {missing[0]} disappeared (expired or purged)")
            if len(ended) == len(ids):
                return ended
            if deadline is not None and time.monotonic() >= deadline:
                left = [i for i in ids if i not in ended]
                raise WaitTimeoutError(
                    f"timed out waiting for {len(left)} job(s), e.g. {left[0]}"
                )
            time.sleep(poll)
            poll = min(poll * 1.5, 1.0)

    def cancel(self, job_id: str) -> JobState:
        return self.store.cancel(check_job_id(job_id))

    # -- dead letter queue --------------------------------------------------------------
    def dlq_list(self, limit: int = 100) -> list[Job]:
        ids = [as_str(i) for i in self.redis.lrange(self.keys.dead_letter, 0, limit - 1)]
        return self._load(ids)

    def dlq_retry(self, job_id: str) -> None:
        job = self.get(job_id)
        if job.state is not JobState.DEAD or self.store.dlq_retry([job_id]) != 1:
            from queuectl.core.errors import ConflictError

            raise ConflictError(f"job {job_id} is not in the DLQ (state {job.state.value})")

    def dlq_retry_all(self) -> int:
        total = 0
        while True:
            ids = [as_str(i) for i in self.redis.lrange(self.keys.dead_letter, 0, 999)]
            moved = self.store.dlq_retry(ids) if ids else 0
            total += moved
            if moved == 0:
                return total

    def dlq_purge(self) -> int:
        return self.store.purge_dlq()

    # -- config ---------------------------------------------------------------------------
    def config_list(self) -> dict[str, tuple[str, bool]]:
        """Every policy key: (effective value, True if set in Redis rather than defaulted)."""
        stored = {as_str(a): as_str(b) for a, b in self.redis.hgetall(self.keys.config).items()}
        out = {}
        for name in policy_keys.POLICY_KEYS:
            if name in stored:
                out[name] = (stored[name], True)
            else:
                out[name] = (policy_keys.default_value(name, self.store.policy), False)
        return out

    def config_get(self, name: str) -> str:
        policy_keys.policy_key(name)
        return self.config_list()[name][0]

    def config_set(self, name: str, value: str) -> str:
        stored = policy_keys.normalise(name, value)
        self.redis.hset(self.keys.config, name, stored)
        return stored

    # -- workers ----------------------------------------------------------------------------
    def stop_workers(self, worker_id: str | None) -> list[str]:
        """Ask one live worker (or all, with None) to stop gracefully; returns their ids."""
        live = [w.id for w in self.workers() if w.alive]
        if worker_id is not None:
            if worker_id not in live:
                raise NotFoundError(f"no live worker {worker_id}")
            live = [worker_id]
        pipe = self.redis.pipeline(transaction=False)
        for wid in live:
            pipe.rpush(self.keys.control(wid), "stop")
            pipe.expire(self.keys.control(wid), 3600)
        pipe.execute()
        return live


def parse_state(raw: str) -> JobState:
    try:
        return JobState(raw)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise InvalidInputError(f"unknown state {raw!r} (known: {names})") from None
