"""Administrative transitions: the dead letter queue, cancel, quarantine, pruning, repair."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from queuectl.core.errors import ConflictError, NotFoundError
from queuectl.core.keys import DEFAULT_QUEUE, INDEXED_STATES
from queuectl.core.models import JobState, valid_name
from queuectl.core.scripting import PIPELINE_CHUNK, ScriptStore, as_str
from queuectl.core.tracecontext import read_context
from queuectl.core.tracing import NO_TRACING, JobSpan, Tracing


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One quarantined job: why it was set aside, by which script, and when."""

    id: str
    at: float
    reason: str
    by: str
    state: str


@dataclass(frozen=True, slots=True)
class Moved:
    """How many jobs a bulk transition moved, and what it set aside (one line each)."""

    moved: int
    notes: list[str]


def _chunks(ids: Sequence[str]) -> list[list[str]]:
    return [list(ids[i:i + PIPELINE_CHUNK]) for i in range(0, len(ids), PIPELINE_CHUNK)]


def _settle_spans(spans: dict[str, JobSpan], moved: int, notes: list[str]) -> None:
    """Fail the spans of jobs a DLQ retry did not move: those its notes name (``quarantined
    ID: why``, ``left ID in the DLQ ...``), or every one when it moved none."""
    named = set()
    for note in notes:
        words = note.split(" ", 2)
        job_id = words[1].rstrip(":") if len(words) > 1 else ""
        if job_id in spans:
            named.add(job_id)
            spans[job_id].error("set_aside", note)
    if moved == 0:
        for job_id, span in spans.items():
            if job_id not in named:
                span.error("not_moved", "not in the dead letter queue")


class AdminOps(ScriptStore):
    """Operator commands over the scripts; mixed into ``Store``."""

    tracing: Tracing = NO_TRACING

    def dlq_retry(self, ids: Sequence[str]) -> Moved:
        """Requeue dead jobs with fresh retries; each gets a send span in its own trace."""
        moved, notes = 0, []
        for part in _chunks(ids):
            spans = self._retry_spans(part)
            try:
                keys, args = self.job_queue_keys(part, ("dead",))
                reply = self._run("dlq_retry", [self.keys.dead_letter, self.keys.quarantine,
                                                self.keys.quarantine_why, self.keys.queues,
                                                *keys], args)
                _settle_spans(spans, int(reply[0]), [as_str(n) for n in reply[1]])
            except Exception as exc:
                for span in spans.values():
                    span.error(type(exc).__name__, str(exc))
                raise
            finally:
                for span in spans.values():
                    span.end()
            moved += int(reply[0])
            notes += [as_str(n) for n in reply[1]]
        return Moved(moved, notes)

    def _retry_spans(self, ids: Sequence[str]) -> dict[str, JobSpan]:
        """A send span per job a DLQ retry puts back, a child of the job's own context
        (the job keeps that context: its next attempts join the same trace)."""
        if not ids or not self.tracing.check():
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), ["queue", "trace_context"])
        spans = {}
        for job_id, row in zip(ids, pipe.execute(raise_on_error=False), strict=True):
            queue, context = row if isinstance(row, list) else (None, None)
            name = as_str(queue) if queue else DEFAULT_QUEUE
            spans[job_id] = self.tracing.send(
                name if valid_name(name) else DEFAULT_QUEUE, job_id,
                read_context(as_str(context) if context else None), operation="dlq_retry")
        return spans

    def cancel(self, job_id: str) -> JobState:
        """Cancel a job that has not ended; returns the state it was in."""
        k = self.keys
        for _ in range(10):
            try:
                queue, worker = self.redis.hmget(k.job(job_id), ["queue", "worker"])
            except redis.ResponseError:
                queue = worker = None  # not a hash: the script says what it is
            q = as_str(queue) if queue and valid_name(as_str(queue)) else DEFAULT_QUEUE
            w = as_str(worker) if worker and valid_name(as_str(worker)) else ""
            reply = self._run(
                "cancel",
                [k.job(job_id), k.queue(q), k.retry_queue, k.delayed,
                 k.inflight(w) if w else k.inflight("-"), k.cancelled, k.quarantine,
                 k.index(q, "scheduled"), k.index(q, "failed"), k.index(q, "cancelled"),
                 k.queues],
                [job_id, w, q],
            )
            code = int(reply[0])
            if code == 0:
                return JobState(as_str(reply[1]))
            if code == -1:
                raise NotFoundError(f"no job {job_id}")
            if code == -2:
                raise ConflictError(f"job {job_id} has already ended ({as_str(reply[1])})")
            if code == -5:
                raise ConflictError(f"job {job_id} is in quarantine: see queuectl quarantine "
                                    "list; retry or purge it there")
        raise ConflictError(f"job {job_id} kept changing workers; try again")

    def purge_dlq(self) -> int:
        """Delete every dead job (and DLQ entries whose record is gone); returns how many."""
        k = self.keys
        total = 0
        while True:
            ids = [as_str(i) for i in self.redis.lrange(k.dead_letter, 0, PIPELINE_CHUNK - 1)]
            if not ids:
                return total
            found, args = self.job_queue_keys(ids, ("dead",))
            keys = [k.dead_letter]
            for i, job_id in enumerate(ids):
                keys += [k.job(job_id), k.log(job_id), found[4 * i + 3]]
            _, deleted, dropped = self._run("purge", keys, args)
            if int(deleted) + int(dropped) == 0:
                return total
            total += int(deleted) + int(dropped)

    # -- quarantine -----------------------------------------------------------------------
    def quarantine_list(self, limit: int, start: int = 0) -> tuple[list[QuarantineEntry], int]:
        """Up to ``limit`` quarantined jobs from position ``start``, oldest first, and how
        many there are in all."""
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(k.quarantine, start, start + limit - 1, withscores=True)
        pipe.zcard(k.quarantine)
        scored, total = pipe.execute()
        ids = [as_str(m) for m, _ in scored]
        raw: list[Any] = self.redis.hmget(k.quarantine_why, ids) if ids else []
        out = []
        for (_, at), job_id, why in zip(scored, ids, raw, strict=True):
            try:
                info = json.loads(as_str(why)) if why else {}
            except ValueError:
                info = {}
            info = info if isinstance(info, dict) else {}
            out.append(QuarantineEntry(job_id, float(at), str(info.get("reason", "?")),
                                       str(info.get("by", "?")), str(info.get("state", ""))))
        return out, int(total)

    def quarantine_ids(self, limit: int) -> list[str]:
        return [as_str(m) for m in self.redis.zrange(self.keys.quarantine, 0, limit - 1)]

    def quarantine_retry(self, ids: Sequence[str]) -> Moved:
        """Put quarantined jobs back on their queues (fresh attempts); notes say why not."""
        moved, notes = 0, []
        for part in _chunks(ids):
            keys, args = self.job_queue_keys(part)
            reply = self._run("quarantine_retry",
                              [self.keys.quarantine, self.keys.quarantine_why, self.keys.queues,
                               *keys], args)
            moved += int(reply[0])
            notes += [as_str(n) for n in reply[1]]
        return Moved(moved, notes)

    def quarantine_purge(self, ids: Sequence[str]) -> int:
        """Delete quarantined jobs and their output; returns how many were deleted."""
        k = self.keys
        deleted = 0
        for part in _chunks(ids):
            keys = [k.quarantine, k.quarantine_why]
            for job_id in part:
                keys += [k.job(job_id), k.log(job_id)]
            deleted += int(self._run("quarantine_purge", keys, part)[0])
        return deleted

    # -- upkeep ---------------------------------------------------------------------------
    def prune(self, batch: int = 500) -> int:
        """Delete up to ``batch`` completed and cancelled jobs each whose retention
        (completed-ttl) has passed, with their output and index entries."""
        k = self.keys
        return int(self._run("prune", [k.completed, k.cancelled, k.job_prefix, k.log_prefix,
                                       k.index_prefix],
                             [self.policy.completed_ttl, batch])[0])

    def prune_dead(self, batch: int = 500) -> tuple[int, int]:
        """Delete up to ``batch`` of the oldest dead jobs past dead-ttl or beyond dead-max,
        with their output and index entries; returns (deleted, stale DLQ entries dropped)."""
        k = self.keys
        policy = self.policy
        reply = self._run("prune_dead", [k.dead_letter, k.job_prefix, k.log_prefix,
                                         k.index_prefix],
                          [policy.dead_ttl, policy.dead_max, batch])
        return int(reply[0]), int(reply[1])

    def prune_queues(self, names: Sequence[str]) -> int:
        """Forget the names among ``names`` whose queue holds nothing; returns how many."""
        k = self.keys
        keys = [k.queues]
        for name in names:
            keys += [k.queue(name), *(k.index(name, s) for s in INDEXED_STATES)]
        return int(self._run("prune_queues", keys, list(names))[0])

    def repair(self, job_id: str, places: dict[str, str], *, fix: bool) -> tuple[list[str], bool]:
        """Check one job against the invariant (atomically); ``places`` maps kind -> key.

        Returns the problems found and whether they were repaired; raises ConflictError
        when the record changed since the caller read it (read it again).
        """
        k = self.keys
        reply = self._run("repair",
                          [k.job(job_id), k.quarantine, k.quarantine_why, k.workers,
                           *places.values()],
                          [job_id, "repair" if fix else "check", *places])
        if isinstance(reply[0], int) and reply[0] == -3:
            raise ConflictError(f"job {job_id} changed while it was checked")
        return [as_str(p) for p in reply[0]], bool(int(reply[1]))
