"""The Python client: what applications and the CLI use to talk to QueueCTL.

    from queuectl.core.client import Client
    from queuectl.core.settings import Settings

    client = Client.connect(Settings())
    job = client.enqueue("echo hello", max_retries=2)
    print(client.wait([job.id])[job.id].state)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from queuectl.core import policy as policy_keys
from queuectl.core.admin_ops import Moved, QuarantineEntry
from queuectl.core.bulkread import BulkReads, Settled
from queuectl.core.connection import open_store
from queuectl.core.errors import (
    ConflictError,
    DataError,
    InvalidInputError,
    NotFoundError,
)
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.listing import Count, Lister, Listing, parse_cursor
from queuectl.core.models import (
    Job,
    JobSpec,
    JobState,
    check_delay,
    check_job_id,
    spec_from_options,
)
from queuectl.core.overview import Inspection
from queuectl.core.policy import PolicyView
from queuectl.core.scripting import decoded, is_wrongtype
from queuectl.core.settings import Settings
from queuectl.core.store import EnqueueResult, Store, as_str
from queuectl.core.tracing import Tracing

__all__ = ["Client", "JobPage", "LogTail", "Settled", "parse_state"]


@dataclass(frozen=True, slots=True)
class JobPage:
    """Jobs listed, the ids whose record could not be read (skipped), where to go on, and
    (when known) how many there are in all."""

    jobs: list[Job]
    unreadable: list[str]
    next_cursor: str | None = None
    total: int | None = None


@dataclass(frozen=True, slots=True)
class LogTail:
    data: bytes
    total: int
    state: JobState


class Client(BulkReads, Inspection):
    """Typed operations over one Store; every method is safe to call from many threads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.keys = store.keys
        self.redis = store.redis

    @classmethod
    def connect(cls, settings: Settings, tracing: Tracing | None = None) -> Client:
        """A client of the Redis ``settings`` name; ``tracing`` makes the send spans of
        enqueue and DLQ retry (default: Tracing.for_client)."""
        store = open_store(settings)
        store.tracing = tracing if tracing is not None else Tracing.for_client()
        return cls(store)

    # -- enqueue ------------------------------------------------------------------
    def enqueue(self, command: str, *, job_id: str | None = None, queue: str = DEFAULT_QUEUE,
                max_retries: int | None = None, timeout: float | None = None,
                run_at: datetime | None = None, delay: float | None = None,
                env: dict[str, str] | None = None, replace: bool = False) -> Job:
        """Validate and store one job in one round trip; returns its record as stored.

        ``delay`` (seconds) counts from Redis's clock, like every time QueueCTL keeps;
        ``run_at`` is an absolute time.
        """
        checked = check_delay(delay, run_at)
        spec = spec_from_options(command, job_id=job_id, queue=queue, max_retries=max_retries,
                                 timeout=timeout, run_at=run_at, env=env)
        return self.enqueue_job(spec, replace=replace, delay=checked)

    def enqueue_job(self, spec: JobSpec, *, replace: bool = False,
                    delay: float | None = None) -> Job:
        """Store a validated job in one round trip; returns its record as stored (the
        script answers what only Redis knows: its clock's created_at and run_at)."""
        return self.store.enqueue_stored(spec, replace=replace,
                                         delay=check_delay(delay, spec.run_at)).job(spec)

    def enqueue_spec(self, spec: JobSpec, *, replace: bool = False) -> JobState:
        """Store a validated job; returns its state (pending or scheduled)."""
        return self.store.enqueue(spec, replace=replace)

    def enqueue_many(self, specs: Iterable[JobSpec], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """Store many jobs in pipelined chunks; one result per job, in order.

        A job whose id exists is a result with ``state=None`` and an ``error``, not a
        failure. At the first job Redis refuses (out of memory, a key of the wrong
        type, a lost connection) no further chunk is sent and ``BulkEnqueueError`` says
        exactly which jobs were stored.
        """
        return self.store.enqueue_many(specs, replace=replace)

    # -- reading ---------------------------------------------------------------------
    def _hgetall(self, key: str) -> dict[str, str]:
        try:
            return decoded(self.redis.hgetall(key))
        except redis.ResponseError as exc:
            if is_wrongtype(exc):
                raise DataError(f"key {key} is not a job hash (queuectl doctor)") from None
            raise

    def find(self, job_id: str) -> Job | None:
        """The job's record, None if there is none; CorruptRecordError if it cannot be read."""
        raw = self._hgetall(self.keys.job(check_job_id(job_id)))
        if not raw:
            return None
        pipe = self.redis.pipeline(transaction=False)
        pipe.strlen(self.keys.log(job_id))
        (kept,) = pipe.execute(raise_on_error=False)  # a log key of the wrong type keeps 0
        job = Job.from_hash(raw, job_id, log_kept=kept if isinstance(kept, int) else 0)
        reason = self.quarantine_reason(job_id)
        return job if reason is None else job.model_copy(update={"state": JobState.QUARANTINED})

    def find_raw(self, job_id: str) -> dict[str, str]:
        """The record's fields as stored, for showing a record that does not parse."""
        return self._hgetall(self.keys.job(check_job_id(job_id)))

    def quarantine_reason(self, job_id: str) -> str | None:
        """Why the job is in quarantine, or None when it is not there."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(self.keys.quarantine, job_id)
        pipe.hget(self.keys.quarantine_why, job_id)
        score, why = pipe.execute(raise_on_error=False)
        if not isinstance(score, float):
            return None
        try:
            info = json.loads(as_str(why)) if isinstance(why, bytes) else {}
        except ValueError:
            info = {}
        return str(info.get("reason", "?")) if isinstance(info, dict) else "?"

    def get(self, job_id: str) -> Job:
        job = self.find(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def iter_jobs(self, state: JobState | None = None, queue: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> tuple[Iterator[Job], Listing]:
        """Jobs in lifecycle order as they are read (0 = no limit); the Listing fills in
        as the iterator runs: unreadable records skipped, the cursor of the next page."""
        seen = Listing()
        return Lister(self.store).jobs(state, queue, limit, cursor, seen), seen

    def list_jobs(self, state: JobState | None = None, queue: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> JobPage:
        """Jobs in one state (or every state), optionally of one queue, up to ``limit``."""
        jobs, seen = self.iter_jobs(state, queue, limit, cursor)
        listed = list(jobs)
        return JobPage(listed, seen.unreadable, seen.next_cursor)

    def count_jobs(self, state: JobState | None = None, queue: str | None = None) -> Count:
        """How many jobs ``list_jobs(state, queue)`` covers, from the structures' lengths."""
        return Lister(self.store).count(state, queue)

    def logs(self, job_id: str) -> LogTail:
        """The stored tail of a job's output and how many bytes it produced in all."""
        # One MULTI: a follower derives the new bytes from total and tail, so both must
        # come from the same moment (a chunk shipped in between would be printed twice).
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.job(check_job_id(job_id)))
        pipe.get(self.keys.log(job_id))
        pipe.zscore(self.keys.quarantine, job_id)
        raw, data, quarantined = pipe.execute(raise_on_error=False)
        if isinstance(raw, Exception):
            raise DataError(f"key {self.keys.job(job_id)} is not a job hash (queuectl doctor)")
        if not raw:
            raise NotFoundError(f"no job {job_id}")
        job = Job.from_hash(decoded(raw), job_id)
        tail = bytes(data) if isinstance(data, bytes) else b""
        # A quarantined job will not move on by itself: a follower stops there.
        state = JobState.QUARANTINED if isinstance(quarantined, float) else job.state
        return LogTail(tail, job.log_size, state)

    def server_info(self) -> dict[str, str]:
        """A few INFO fields of the Redis server (version, mode, uptime, persistence, memory)."""
        info: Any = self.redis.info()
        wanted = ("redis_version", "redis_mode", "process_id", "uptime_in_seconds",
                  "aof_enabled", "used_memory_human", "connected_clients")
        return {name: str(info[name]) for name in wanted if name in info}

    # -- cancelling ------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobState:
        return self.store.cancel(check_job_id(job_id))

    # -- dead letter queue --------------------------------------------------------------
    def dlq_list(self, limit: int = 100, cursor: str | None = None) -> JobPage:
        """Up to ``limit`` dead jobs, oldest first, from ``cursor`` (``dead:<position>``)."""
        state, start = parse_cursor(cursor) if cursor else (JobState.DEAD, 0)
        if state is not JobState.DEAD:
            raise InvalidInputError(f"the cursor is for {state.value} jobs, not dead ones")
        unreadable: list[str] = []
        jobs, total = Lister(self.store).dead(limit, start, unreadable)
        more = start + limit < total
        return JobPage(jobs, unreadable, f"dead:{start + limit}" if more else None, total)

    def dlq_retry(self, job_id: str) -> Moved:
        job = self.get(job_id)
        result = self.store.dlq_retry([job_id]) if job.state is JobState.DEAD else Moved(0, [])
        if result.moved != 1 and not result.notes:
            raise ConflictError(f"job {job_id} is not in the DLQ (state {job.state.value})")
        return result

    def dlq_retry_all(self) -> Moved:
        total, notes = 0, []
        while True:
            ids = [as_str(i) for i in self.redis.lrange(self.keys.dead_letter, 0, 999)]
            result = self.store.dlq_retry(ids) if ids else Moved(0, [])
            total += result.moved
            notes += result.notes
            if result.moved == 0 and not result.notes:
                return Moved(total, notes)

    def dlq_purge(self) -> int:
        return self.store.purge_dlq()

    # -- quarantine -------------------------------------------------------------------------
    def quarantine_list(self, limit: int = 100,
                        start: int = 0) -> tuple[list[QuarantineEntry], int]:
        """Up to ``limit`` quarantined jobs from position ``start`` (oldest first) with their
        reasons, and the total."""
        return self.store.quarantine_list(limit, start)

    def quarantine_retry(self, ids: Sequence[str] | None) -> Moved:
        """Put quarantined jobs (all of them, with None) back on their queues."""
        if ids is not None:
            return self.store.quarantine_retry([check_job_id(i) for i in ids])
        total, notes, done = 0, list[str](), set[str]()
        while True:
            batch = [i for i in self.store.quarantine_ids(len(done) + 1000) if i not in done]
            if not batch:
                return Moved(total, notes)
            done.update(batch)
            result = self.store.quarantine_retry(batch)
            total += result.moved
            notes += result.notes

    def quarantine_purge(self, ids: Sequence[str] | None) -> int:
        """Delete quarantined jobs (all of them, with None) and their output."""
        if ids is not None:
            return self.store.quarantine_purge([check_job_id(i) for i in ids])
        total = 0
        while batch := self.store.quarantine_ids(1000):
            deleted = self.store.quarantine_purge(batch)
            if deleted == 0:
                return total
            total += deleted
        return total

    # -- config ---------------------------------------------------------------------------
    def config_view(self) -> PolicyView:
        """The policy in effect, what P:config stores, and which stored values are invalid."""
        return self.store.policies.refresh()

    def config_list(self) -> dict[str, tuple[str, str]]:
        """Every policy key: (effective value, where it comes from: PolicyView.source)."""
        view = self.config_view()
        return {name: (policy_keys.format_value(getattr(view.policy, key.attr)),
                       view.source(name))
                for name, key in policy_keys.POLICY_KEYS.items()}

    def config_get(self, name: str) -> str:
        policy_keys.policy_key(name)
        return self.config_list()[name][0]

    def config_unset(self, name: str) -> str:
        """Drop a stored value: the env or default value applies again; returns it."""
        policy_keys.policy_key(name)
        try:
            self.redis.hdel(self.keys.config, name)
        except redis.ResponseError as exc:
            if is_wrongtype(exc):
                raise DataError(f"key {self.keys.config} is not a hash (queuectl doctor)") from None
            raise
        return self.config_get(name)

    def config_set(self, name: str, value: str) -> str:
        stored = policy_keys.normalise(name, value)
        try:
            self.redis.hset(self.keys.config, name, stored)
        except redis.ResponseError as exc:
            if is_wrongtype(exc):
                raise DataError(f"key {self.keys.config} is not a hash (queuectl doctor)") from None
            raise
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
