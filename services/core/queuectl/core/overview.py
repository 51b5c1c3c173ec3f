"""What ``status`` and ``worker list`` read: counts by state and queue, workers, schedulers.

Every read tolerates keys of the wrong type: such a key counts as empty and is
named in ``Status.problems`` (``queuectl doctor`` says more), so that one bad key
never hides the rest of the picture.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from queuectl.core.keys import DEFAULT_QUEUE, INDEXED_STATES, Keys
from queuectl.core.models import JobState, valid_name
from queuectl.core.scripting import decoded, is_wrongtype
from queuectl.core.store import Store, as_str

# A retry or delayed job this long past its due time is overdue: a running scheduler
# promotes within a second (QUEUECTL_SCHEDULER_INTERVAL caps its sleep).
OVERDUE_AFTER = 5.0
# How many ids at the head of a queue are looked at for its oldest ready job.
OLDEST_SCAN = 10


def format_seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


# The running totals kept in P:stats (field ``<counter>:<queue>``, written by the scripts),
# under names that say what was counted: the state words (``failed``, ``dead``) count jobs
# in a state now everywhere else, so a counter of runs or moves must not reuse them.
TOTALS = {
    "completed": "runs_completed",  # runs that exited 0
    "failed": "runs_failed",        # runs that failed (exit code, timeout, could not start)
    "retried": "retries",           # failed runs after which a retry was scheduled
    "dead": "buried",               # jobs moved to the DLQ (retries or max-lost exhausted)
    "lost": "runs_lost",            # runs whose worker was lost (handed back by the scheduler)
}


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    alive: bool
    last_beat: float
    fields: dict[str, str]
    inflight: list[str]


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue: its jobs in each state now, and its running totals since counting began
    (every name of ``TOTALS``' values, 0 when never counted).

    ``processing`` counts its jobs held by registered workers; ``oldest_ready_age`` is how
    long its longest-waiting pending job has been ready (0 when none; a retry's back-off
    or a ``--delay`` is not waiting); ``retries_due`` counts its retries and delayed jobs
    whose time has come but that no scheduler has moved back yet.
    """

    name: str
    pending: int
    states: dict[str, int]
    totals: dict[str, int]
    processing: int = 0
    oldest_ready_age: float = 0.0
    retries_due: int = 0


@dataclass(slots=True)
class Status:
    states: dict[str, int]
    queues: list[QueueStats]
    workers: list[WorkerInfo]
    schedulers: dict[str, float] = field(default_factory=dict)
    server_time: float = 0.0
    # Keys that could not be read (wrong type) and config values that do not parse:
    # the counts above treat such a key as empty; `queuectl doctor` says more.
    problems: list[str] = field(default_factory=list)


class Inspection:
    """Status reads over one Store; mixed into ``Client``."""

    store: Store
    redis: redis.Redis
    keys: Keys

    def _read(self, pipe: Any, problems: list[str], names: Sequence[str]) -> list[Any]:
        """Execute ``pipe``; a reply that failed with WRONGTYPE becomes None and a problem."""
        out: list[Any] = []
        for name, reply in zip(names, pipe.execute(raise_on_error=False), strict=True):
            if isinstance(reply, redis.ResponseError) and is_wrongtype(reply):
                problems.append(f"key {name} has the wrong type (queuectl doctor)")
                out.append(None)
            elif isinstance(reply, Exception):
                raise reply
            else:
                out.append(reply)
        return out

    def queue_names(self, problems: list[str] | None = None) -> list[str]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(self.keys.queues)
        (members,) = self._read(pipe, problems if problems is not None else [], [self.keys.queues])
        names = {as_str(q) for q in members or ()}
        names.add(DEFAULT_QUEUE)
        return sorted(n for n in names if valid_name(n))

    def workers(self, problems: list[str] | None = None) -> list[WorkerInfo]:
        k = self.keys
        problems = problems if problems is not None else []
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(k.workers, 0, -1, withscores=True)
        (scored,) = self._read(pipe, problems, [k.workers])
        entries = [(as_str(m), float(s)) for m, s in scored or ()]
        pipe = self.redis.pipeline(transaction=False)
        names = []
        for worker_id, _ in entries:
            pipe.hgetall(k.worker(worker_id))
            pipe.smembers(k.inflight(worker_id))
            names += [k.worker(worker_id), k.inflight(worker_id)]
        replies = self._read(pipe, problems, names)
        out = []
        for i, (worker_id, beat) in enumerate(entries):
            raw, held = replies[2 * i] or {}, replies[2 * i + 1] or set()
            out.append(WorkerInfo(
                id=worker_id, alive=bool(raw), last_beat=beat, fields=decoded(raw),
                inflight=sorted(as_str(j) for j in held),
            ))
        return out

    def status(self, *, hints: bool = True) -> Status:
        """Counts by state and by queue, workers and schedulers; with ``hints``, words in
        ``problems`` for work that waits on a missing scheduler or worker."""
        k = self.keys
        problems: list[str] = []
        view = self.store.policies.refresh()
        problems += [f"config {name}: {why}" for name, why in view.invalid.items()]
        queues = self.queue_names(problems)
        workers = self.workers(problems)
        pipe = self.store.server_pipeline()
        pipe.time()
        names = ["TIME"]
        for key, count in ((k.delayed, pipe.zcard), (k.retry_queue, pipe.zcard),
                           (k.dead_letter, pipe.llen), (k.completed, pipe.zcard),
                           (k.cancelled, pipe.zcard), (k.quarantine, pipe.zcard)):
            count(key)
            names.append(key)
        pipe.hgetall(k.stats)
        pipe.zrange(k.schedulers, 0, -1, withscores=True)
        names += [k.stats, k.schedulers]
        head = self._read(pipe, problems, names)
        secs, micros = head[0]
        now = secs + micros / 1e6
        scheduled, failed, dead, completed, cancelled, quarantined, raw_stats, scheds = head[1:]
        held = self._held_by_queue(workers)
        qstats = self._queue_stats(queues, raw_stats or {}, problems, now, held)
        states = {
            JobState.PENDING.value: sum(q.pending for q in qstats),
            JobState.SCHEDULED.value: int(scheduled or 0),
            JobState.PROCESSING.value: sum(len(w.inflight) for w in workers),
            JobState.FAILED.value: int(failed or 0),
            JobState.DEAD.value: int(dead or 0),
            JobState.COMPLETED.value: int(completed or 0),
            JobState.CANCELLED.value: int(cancelled or 0),
            JobState.QUARANTINED.value: int(quarantined or 0),
        }
        pending = {q.name: q.pending for q in qstats if q.pending}
        for hint in (self.scheduler_hint(), worker_hint(pending, workers)) if hints else ():
            if hint:
                problems.append(hint)
        return Status(states, qstats, workers, {as_str(m): float(s) for m, s in scheds or ()},
                      now, problems)

    def scheduler_hint(self) -> str | None:
        """Words for retries or delayed jobs that are overdue because no scheduler runs (or
        one lags), else None: without a scheduler nothing moves them back to a queue."""
        k = self.keys
        pipe = self.store.server_pipeline()
        pipe.time()
        for zset in (k.retry_queue, k.delayed):
            pipe.zrange(zset, 0, 0, withscores=True)
        pipe.zrange(k.schedulers, 0, -1)
        (secs, micros), *firsts, ids = pipe.execute(raise_on_error=False)
        now = secs + micros / 1e6
        due = [s for first in firsts if isinstance(first, list) for _, s in first]
        if not due or now - min(due) < OVERDUE_AFTER:
            return None
        late = now - min(due)
        pipe = self.redis.pipeline(transaction=False)
        for zset in (k.retry_queue, k.delayed):
            pipe.zcount(zset, "-inf", now - OVERDUE_AFTER)
        for sid in ids if isinstance(ids, list) else []:
            pipe.exists(k.scheduler(as_str(sid)))
        counts = pipe.execute(raise_on_error=False)
        overdue = sum(c for c in counts[:2] if isinstance(c, int))
        alive = sum(c for c in counts[2:] if isinstance(c, int))
        what = f"{overdue} retr{'y' if overdue == 1 else 'ies'} or delayed job(s) are overdue " \
               f"(the oldest by {format_seconds(late)})"
        if alive == 0:
            return f"{what} and no scheduler is running: start one (queuectl scheduler)"
        return f"{what} although {alive} scheduler(s) run: see their logs"

    def worker_hint_for(self, ids: Sequence[str]) -> str | None:
        """worker_hint for the queues of the jobs among ``ids`` that are pending."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), "state", "queue")
        queues = set()
        for reply in pipe.execute(raise_on_error=False):
            if isinstance(reply, list) and reply[0] == b"pending" and reply[1]:
                queues.add(as_str(reply[1]))
        names = sorted(q for q in queues if valid_name(q))
        if not names:
            return None
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.llen(self.keys.queue(name))
        lengths = pipe.execute(raise_on_error=False)
        pending = {n: c for n, c in zip(names, lengths, strict=True) if isinstance(c, int) and c}
        return worker_hint(pending, self.workers()) if pending else None

    def _held_by_queue(self, workers: Sequence[WorkerInfo]) -> dict[str, int]:
        """How many jobs registered workers hold, by the queue in each job's record."""
        ids = [job_id for w in workers for job_id in w.inflight]
        held: dict[str, int] = {}
        for start in range(0, len(ids), 500):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in ids[start:start + 500]:
                pipe.hget(self.keys.job(job_id), "queue")
            for reply in pipe.execute(raise_on_error=False):
                if isinstance(reply, bytes | str) and valid_name(as_str(reply)):
                    held[as_str(reply)] = held.get(as_str(reply), 0) + 1
        return held

    def _queue_stats(self, queues: list[str], raw_stats: Any, problems: list[str],
                     now: float, held: Mapping[str, int]) -> list[QueueStats]:
        """Per queue: pending (its list), the other states (its indexes), what is due and
        how long its oldest pending job has waited, pipelined."""
        k = self.keys
        totals: dict[str, dict[str, int]] = {}
        for field_name, value in raw_stats.items():
            kind, _, queue = as_str(field_name).partition(":")
            if kind in TOTALS and as_str(value).isdigit():
                totals.setdefault(queue, dict.fromkeys(TOTALS.values(), 0))[TOTALS[kind]] = (
                    int(value))
        out = []
        width = 3 + len(INDEXED_STATES)
        for start in range(0, len(queues), 200):
            chunk = queues[start:start + 200]
            pipe = self.redis.pipeline(transaction=False)
            names = []
            for q in chunk:
                pipe.llen(k.queue(q))
                names.append(k.queue(q))
                for state in INDEXED_STATES:
                    pipe.zcard(k.index(q, state))
                    names.append(k.index(q, state))
                for state in ("failed", "scheduled"):
                    pipe.zcount(k.index(q, state), "-inf", now)
                names += [k.index(q, "failed"), k.index(q, "scheduled")]
            counts = [int(n or 0) for n in self._read(pipe, problems, names)]
            ages = self._oldest_ready_ages(chunk, now)
            for i, q in enumerate(chunk):
                row = counts[i * width:(i + 1) * width]
                states = dict(zip(INDEXED_STATES, row[1:1 + len(INDEXED_STATES)], strict=True))
                out.append(QueueStats(q, row[0], states,
                                      totals.get(q, dict.fromkeys(TOTALS.values(), 0)),
                                      held.get(q, 0), ages[i], row[-2] + row[-1]))
        return out

    def _oldest_ready_ages(self, queues: Sequence[str], now: float) -> list[float]:
        """Per queue, how long its longest-ready pending job has waited (0 when none).

        Workers take from the head, and new jobs join the tail, so the oldest is near the
        head; jobs handed back go to the very front with a fresh ready time, hence a look
        at the first OLDEST_SCAN ids rather than the first alone.
        """
        pipe = self.redis.pipeline(transaction=False)
        for q in queues:
            pipe.lrange(self.keys.queue(q), 0, OLDEST_SCAN - 1)
        heads = [r if isinstance(r, list) else [] for r in pipe.execute(raise_on_error=False)]
        pipe = self.redis.pipeline(transaction=False)
        for ids in heads:
            for job_id in ids:
                pipe.hget(self.keys.job(as_str(job_id)), "ready_at")
        times = iter(pipe.execute(raise_on_error=False) if any(heads) else [])
        ages = []
        for ids in heads:
            ready = [_time_or_none(next(times)) for _ in ids]
            known = [t for t in ready if t is not None]
            ages.append(round(max(0.0, now - min(known)), 3) if known else 0.0)
        return ages


def _time_or_none(reply: Any) -> float | None:
    """A stored time, or None for a missing, unreadable or non-finite one."""
    if not isinstance(reply, bytes | str):
        return None
    try:
        value = float(as_str(reply))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def worker_hint(pending: Mapping[str, int], workers: Sequence[WorkerInfo]) -> str | None:
    """Words for pending jobs that no running worker takes (none runs, or none listens to
    their queue), else None: such jobs wait until a worker for their queue starts."""
    taken = {q for w in workers if w.alive and w.fields.get("state") != "stopping"
             for q in w.fields.get("queues", "").split(",")}
    idle = {name: count for name, count in pending.items() if name not in taken}
    if not idle:
        return None
    jobs = sum(idle.values())
    what = f"{jobs} pending job{'s' if jobs != 1 else ''}"
    if not taken:
        return f"{what} and no worker is running: start one (queuectl worker start)"
    names = sorted(idle)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"{what} in queue(s) no running worker takes ({shown}): start one for them "
            f"(queuectl worker start --queues {','.join(names[:5])})")
