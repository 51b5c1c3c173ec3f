"""The scheduler's transitions: promoting due jobs and handing back the jobs of dead workers."""

from __future__ import annotations

from typing import Any

import redis

from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.scripting import (
    PIPELINE_CHUNK,
    Moved,
    PromoteResult,
    ReapResult,
    ScriptStore,
    as_str,
)


class RecoveryOps(ScriptStore):
    """Promotion and recovery; mixed into ``Store``."""

    def promote_due(self, batch: int, *, detail: bool = True) -> PromoteResult:
        """Move up to ``batch`` due retries and delayed jobs back onto their queues.

        One script call: it reads the due entries itself, so the read and the move are
        one atomic step, and its cost is bounded by ``batch``. Without ``detail`` the
        reply carries counts and due times only, not each job (a fifth of the parsing).
        """
        k = self.keys
        reply = self._run("promote", [k.retry_queue, k.delayed, k.quarantine,
                                      k.quarantine_why, k.queues, k.job_prefix,
                                      k.queue(DEFAULT_QUEUE), k.queue_prefix, k.wake_prefix,
                                      k.index_prefix], [batch, int(detail)])
        moved, next_due, server_now, notes, jobs, counts, dues = reply
        self.notes(notes)
        nd = as_str(next_due)
        return PromoteResult(int(moved), float(nd) if nd else None, float(as_str(server_now)),
                             [Moved(as_str(jobs[i]), as_str(jobs[i + 1]), as_str(jobs[i + 2]),
                                    float(as_str(jobs[i + 3])), as_str(jobs[i + 4]))
                              for i in range(0, len(jobs), 5)],
                             {(as_str(counts[i]), as_str(counts[i + 1])): int(counts[i + 2])
                              for i in range(0, len(counts), 3)},
                             [float(d) for d in dues])

    def gauges_lease(self, holder: str, seconds: float) -> bool:
        """Take or renew the cluster-gauges lease for ``holder``; False if another holds it."""
        reply = self._run("gauges_lease", [self.keys.gauges_lease],
                          [holder, max(1, round(seconds * 1000))])
        return int(reply[0]) == 1

    def dead_workers(self, ttl: float) -> list[str]:
        """Registered workers whose last heartbeat is older than ``ttl`` (by Redis's clock)."""
        secs, micros = self.redis.time()
        cutoff = secs + micros / 1e6 - ttl
        try:
            found: Any = self.redis.zrangebyscore(self.keys.workers, "-inf", cutoff)
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            self.notes([f"cannot look for dead workers: key {self.keys.workers} is not a zset"])
            return []
        return [as_str(w) for w in found]

    def reap_worker(self, worker_id: str, ttl: float) -> ReapResult | None:
        """Hand a dead worker's jobs back; None if it turned out to be alive, or if Redis
        has been up less than ``ttl`` (its restart kept every worker from beating)."""
        k = self.keys
        requeued = buried = 0
        notes: list[str] = []
        moved: list[Moved] = []
        fixed = [k.workers, k.inflight(worker_id), k.worker(worker_id), k.control(worker_id),
                 k.wakeup(worker_id), k.dead_letter, k.stats, k.quarantine, k.quarantine_why,
                 k.queues]
        try:
            members: Any = self.redis.smembers(k.inflight(worker_id))
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            members = set()  # the script reports the wrong type
        ids = sorted(as_str(i) for i in members)
        chunks = [ids[i:i + PIPELINE_CHUNK] for i in range(0, len(ids), PIPELINE_CHUNK)] or [[]]
        for part in chunks:
            keys, args = self.job_queue_keys(part, ("dead",))
            reply = self._run("reap", [*fixed, *keys],
                              [worker_id, ttl, self.policy.max_lost, *args])
            if int(reply[0]) in (-1, -2):
                return None  # alive, or Redis has not been up long enough to tell
            requeued += int(reply[0])
            buried += int(reply[1])
            notes += self.notes(reply[3])
            jobs = reply[4]
            moved += [Moved(as_str(jobs[i]), as_str(jobs[i + 1]), as_str(jobs[i + 2]), None,
                            as_str(jobs[i + 3])) for i in range(0, len(jobs), 4)]
        return ReapResult(requeued, buried, notes, moved)
