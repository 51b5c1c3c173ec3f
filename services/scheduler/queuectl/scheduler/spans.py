"""Spans and log lines of the jobs a scheduler moves: ``promote`` (a retry or a delayed
job put back on its queue) and ``recover`` (a dead worker's job handed back, or buried
in the DLQ after losing its worker too often).

Each is a span of the job's own trace (a child of its send span; in link mode the root
of a new trace linked to it), timed by the script call that moved it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from queuectl.core.logs import job_extra
from queuectl.core.scripting import Moved
from queuectl.core.tracing import DEAD_LETTER_EVENT, Tracing

log = logging.getLogger("queuectl.scheduler")


def wanted(tracing: Tracing) -> bool:
    """Whether promoted jobs make spans or debug lines: only then does the scheduler ask
    promote.lua for each job (a backlog of 100,000 must not pay for what nobody keeps)."""
    return tracing.check() or log.isEnabledFor(logging.DEBUG)


def promoted(tracing: Tracing, scheduler_id: str, jobs: Sequence[Moved],
             start_ns: int) -> None:
    """A ``promote <queue>`` span and a debug line per job ``promote.lua`` moved."""
    end = time.time_ns()
    for job in jobs:
        span = tracing.consume("promote", job.queue, job.id, job.trace_context, {
            "messaging.client.id": scheduler_id, "messaging.queuectl.source": job.source,
        }, kind="internal", start_ns=start_ns)
        span.end(end)
        log.debug("job %s promoted (%s) to queue %s", job.id, job.source, job.queue,
                  extra=job_extra(job.id, job.queue, trace_id=span.trace_id))


def recovered(tracing: Tracing, scheduler_id: str, worker_id: str, jobs: Sequence[Moved],
              start_ns: int) -> None:
    """A ``recover <queue>`` span and a line per job ``reap.lua`` took from ``worker_id``."""
    end = time.time_ns()
    for job in jobs:
        span = tracing.consume("recover", job.queue, job.id, job.trace_context, {
            "messaging.client.id": scheduler_id, "messaging.queuectl.source": job.source,
            "messaging.queuectl.lost_worker": worker_id,
        }, kind="internal", start_ns=start_ns)
        extra = job_extra(job.id, job.queue, trace_id=span.trace_id)
        if job.source == "buried":
            why = "its runs lost their worker too often (max-lost)"
            span.event(DEAD_LETTER_EVENT, {"queuectl.reason": why,
                                           "messaging.destination.name": "dead_letter"})
            span.error("worker_lost", why)
            log.warning("job %s of lost worker %s moved to the DLQ: %s", job.id, worker_id,
                        why, extra=extra)
        else:
            log.info("job %s of lost worker %s handed back to queue %s", job.id, worker_id,
                     job.queue, extra=extra)
        span.end(end)
