"""Listing jobs at the cost of what is printed, not of how many jobs exist.

Each state is read from the structure that holds it, a page at a time: a queue's
pending list, the in-flight sets of the workers, the global set of a state, or,
when one queue is asked for, that queue's index of the state (``P:idx:<q>:<s>``),
which the scripts keep. Records are loaded a page at a time and yielded as they
come, so ``list --json`` streams any number of jobs in bounded memory.

A cursor (``<state>:<position>``) continues where a page stopped; a job that moves
between pages may be shown twice or not at all, as with any live listing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from queuectl.core.errors import DataError, InvalidInputError
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.models import CorruptRecordError, Job, JobState, valid_name
from queuectl.core.scripting import is_wrongtype
from queuectl.core.store import Store, as_str

PAGE = 500
QUEUE_CHUNK = 200
# Lifecycle order; ended states show the newest first, waiting ones the next due first.
ORDER = [JobState.PENDING, JobState.PROCESSING, JobState.SCHEDULED, JobState.FAILED,
         JobState.DEAD, JobState.COMPLETED, JobState.CANCELLED, JobState.QUARANTINED]
NEWEST_FIRST = frozenset({JobState.DEAD, JobState.COMPLETED, JobState.CANCELLED})


@dataclass(slots=True)
class Listing:
    """What one ``list`` saw besides the jobs: unreadable records, how many jobs it
    yielded, and where to go on."""

    unreadable: list[str] = field(default_factory=list)
    next_cursor: str | None = None
    shown: int = 0


@dataclass(frozen=True, slots=True)
class Count:
    """How many jobs a listing covers; ``exact`` is False when ``total`` is an upper bound."""

    total: int
    exact: bool = True


def parse_cursor(token: str) -> tuple[JobState, int]:
    state, _, position = token.partition(":")
    try:
        parsed = JobState(state)
    except ValueError:
        parsed = None
    if parsed is None or not position.isdigit():
        raise InvalidInputError(f"invalid cursor {token!r}: use the one list printed")
    return parsed, int(position)


def _wrongtype(reply: Any) -> bool:
    return isinstance(reply, redis.ResponseError)


class Lister:
    """Pages of ids from the structures that hold each state, then their records."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.redis
        self.k = store.keys

    def queue_names(self) -> list[str]:
        try:
            members: Any = self.r.smembers(self.k.queues)
        except redis.ResponseError:
            members = set()
        names = {as_str(q) for q in members} | {DEFAULT_QUEUE}
        return sorted(n for n in names if valid_name(n))

    # -- ids, with their position in the state's stream ------------------------------------
    def _range(self, key: str, kind: str, start: int, newest_first: bool) -> list[str]:
        end = start + PAGE - 1
        try:
            if kind == "list":
                raw: Any = self.r.lrange(key, start, end)
            elif newest_first:
                raw = self.r.zrevrange(key, start, end)
            else:
                raw = self.r.zrange(key, start, end)
        except redis.ResponseError:
            return []  # a key of the wrong type lists nothing; status and doctor say why
        return [as_str(i) for i in raw]

    def _paged(self, key: str, kind: str, start: int, newest_first: bool = False,
               base: int = 0) -> Iterator[tuple[int, str]]:
        position = start
        while page := self._range(key, kind, position, newest_first):
            for job_id in page:
                yield base + position, job_id
                position += 1
            if len(page) < PAGE:
                return

    def _pending_everywhere(self, start: int) -> Iterator[tuple[int, str]]:
        """Pending ids of every queue, queue by queue, skipping ``start`` in all."""
        base = 0
        names = self.queue_names()
        for i in range(0, len(names), QUEUE_CHUNK):
            chunk = names[i:i + QUEUE_CHUNK]
            pipe = self.r.pipeline(transaction=False)
            for name in chunk:
                pipe.llen(self.k.queue(name))
            lengths = [n if isinstance(n, int) else 0 for n in pipe.execute(raise_on_error=False)]
            for name, length in zip(chunk, lengths, strict=True):
                if length and base + length > start:
                    skip = max(0, start - base)
                    yield from self._paged(self.k.queue(name), "list", skip, base=base)
                base += length

    def _processing(self, start: int) -> Iterator[tuple[int, str]]:
        pipe = self.r.pipeline(transaction=False)
        for worker in self._worker_ids():
            pipe.smembers(self.k.inflight(worker))
        held = sorted(as_str(j) for part in pipe.execute(raise_on_error=False)
                      if not _wrongtype(part) for j in part)
        yield from ((pos, job_id) for pos, job_id in enumerate(held) if pos >= start)

    def ids(self, state: JobState, queue: str | None, start: int) -> Iterator[tuple[int, str]]:
        k = self.k
        newest = state in NEWEST_FIRST
        if state is JobState.PENDING:
            if queue is None:
                return self._pending_everywhere(start)
            return self._paged(k.queue(queue), "list", start)
        if state is JobState.PROCESSING:
            return self._processing(start)
        if state is JobState.QUARANTINED:
            return self._paged(k.quarantine, "zset", start)
        if queue is not None:
            return self._paged(k.index(queue, state.value), "zset", start, newest)
        key, kind = self._global(state)
        return self._paged(key, kind, start, newest)

    # -- how many ------------------------------------------------------------------------
    def count(self, state: JobState | None, queue: str | None) -> Count:
        """How many jobs ``jobs(state, queue, ...)`` would list, from the lengths of the
        structures that hold them (LLEN, ZCARD, SCARD), never from their records.

        In-flight and quarantined jobs have no per-queue index: with a queue, those of
        every queue are counted, and the total is exact only when there are none.
        """
        k = self.k
        pipe = self.r.pipeline(transaction=False)
        bound: list[bool] = []  # per command: does it count jobs of other queues too?
        for st in [state] if state else ORDER:
            if st is JobState.PENDING:
                for name in self.queue_names() if queue is None else [queue]:
                    pipe.llen(k.queue(name))
                    bound.append(False)
            elif st is JobState.PROCESSING:
                for worker in self._worker_ids():
                    pipe.scard(k.inflight(worker))
                    bound.append(queue is not None)
            elif st is JobState.QUARANTINED:
                pipe.zcard(k.quarantine)
                bound.append(queue is not None)
            elif queue is not None:
                pipe.zcard(k.index(queue, st.value))
                bound.append(False)
            else:
                key, kind = self._global(st)
                (pipe.llen if kind == "list" else pipe.zcard)(key)
                bound.append(False)
        counts = [n if isinstance(n, int) else 0 for n in pipe.execute(raise_on_error=False)]
        return Count(sum(counts), not any(n for n, b in zip(counts, bound, strict=True) if b))

    def _worker_ids(self) -> list[str]:
        try:
            return [as_str(w) for w in self.r.zrange(self.k.workers, 0, -1)]
        except redis.ResponseError:
            return []

    def _global(self, state: JobState) -> tuple[str, str]:
        """The key (and its kind) that holds every job of a time-ordered state."""
        k = self.k
        return {
            JobState.SCHEDULED: (k.delayed, "zset"), JobState.FAILED: (k.retry_queue, "zset"),
            JobState.DEAD: (k.dead_letter, "list"), JobState.COMPLETED: (k.completed, "zset"),
            JobState.CANCELLED: (k.cancelled, "zset"),
        }[state]

    # -- the dead letter queue ------------------------------------------------------------
    def dead(self, limit: int, start: int, unreadable: list[str]) -> tuple[list[Job], int]:
        """Up to ``limit`` dead jobs from position ``start`` of the DLQ (oldest first), and
        how many the DLQ holds."""
        pipe = self.r.pipeline(transaction=False)
        pipe.lrange(self.k.dead_letter, start, start + limit - 1)
        pipe.llen(self.k.dead_letter)
        try:
            raw_ids, total = pipe.execute()
        except redis.ResponseError as exc:
            if is_wrongtype(exc):
                raise DataError(f"key {self.k.dead_letter} has the wrong type "
                                "(queuectl doctor)") from None
            raise
        ids = [as_str(i) for i in raw_ids]
        records = self.load(ids, unreadable)
        return [records[i] for i in ids if i in records], int(total)

    # -- records --------------------------------------------------------------------------
    def load(self, ids: Sequence[str], unreadable: list[str]) -> dict[str, Job]:
        """The records of ``ids`` that exist and parse, each with the length of its kept
        output; the ids of records that cannot be read are added to ``unreadable``."""
        pipe = self.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self.k.job(job_id))
            pipe.strlen(self.k.log(job_id))
        replies = pipe.execute(raise_on_error=False)
        out: dict[str, Job] = {}
        for i, job_id in enumerate(ids):
            raw, kept = replies[2 * i], replies[2 * i + 1]
            if isinstance(raw, Exception) or (raw and not valid_name(job_id)):
                unreadable.append(job_id)
            elif raw:
                try:
                    out[job_id] = Job.from_hash(
                        {as_str(a): as_str(b) for a, b in raw.items()}, job_id,
                        # A log key of the wrong type keeps nothing usable.
                        log_kept=kept if isinstance(kept, int) else 0)
                except CorruptRecordError:
                    unreadable.append(job_id)
        return out

    def jobs(self, state: JobState | None, queue: str | None, limit: int,
             cursor: str | None, seen: Listing) -> Iterator[Job]:
        """Up to ``limit`` jobs (0 = no limit) in lifecycle order; ``seen`` collects the
        unreadable ids, and the cursor of the next job when one is left."""
        states = [state] if state else ORDER
        first, start = parse_cursor(cursor) if cursor else (states[0], 0)
        if first not in states:
            raise InvalidInputError(f"the cursor is for {first.value} jobs, not these")

        def wanted() -> int:
            # The jobs still to print, plus one to know whether a next page exists.
            return limit - seen.shown + 1 if limit else 0

        for st in states[states.index(first):]:
            for position, job in self._jobs_of(st, queue, start if st is first else 0,
                                               wanted, seen):
                if limit and seen.shown == limit:
                    seen.next_cursor = f"{st.value}:{position}"
                    return
                yield job
                seen.shown += 1

    def _jobs_of(self, state: JobState, queue: str | None, start: int,
                 wanted: Callable[[], int], seen: Listing) -> Iterator[tuple[int, Job]]:
        """(position, job) of one state from ``start`` on; records are read a page at a
        time, and no more than ``wanted()`` at once (0: a whole page)."""
        batch: list[tuple[int, str]] = []
        for item in self.ids(state, queue, start):
            batch.append(item)
            if len(batch) >= (min(PAGE, wanted()) if wanted() else PAGE):
                yield from self._settle(state, queue, batch, seen)
                batch = []
        yield from self._settle(state, queue, batch, seen)

    def _settle(self, state: JobState, queue: str | None, batch: list[tuple[int, str]],
                seen: Listing) -> Iterator[tuple[int, Job]]:
        """The jobs of ``batch`` that are still in ``state`` (and of ``queue``)."""
        records = self.load([job_id for _, job_id in batch], seen.unreadable)
        for position, job_id in batch:
            job = records.get(job_id)
            if job is None:
                continue  # gone meanwhile, or unreadable (counted)
            if state is JobState.QUARANTINED:
                job = job.model_copy(update={"state": JobState.QUARANTINED})
            if job.state is state and (queue is None or job.queue == queue):
                yield position, job
