"""One run of a job as traces and logs see it: its ``process`` span and its log fields.

The span (CONSUMER, ``process <queue>``) is a child of the job's send span in parent
mode, the root of its own trace linked to it in link mode (core/tracing.py). Its
context is the command's ``TRACEPARENT``, so a traced script joins the trace under
the attempt that ran it. While the run lasts, every line the job's thread logs
carries the job's id, queue, attempt and trace id.
"""

from __future__ import annotations

from queuectl.core.logs import bind_job, unbind_job
from queuectl.core.store import Fetched
from queuectl.core.tracing import DEAD_LETTER_EVENT, Tracing
from queuectl.worker.outcome import Ending, RunResult

# error.type of a run that did not succeed, by how it ended (few values, by design).
ERROR_TYPES = {
    Ending.TIMED_OUT: "timeout",
    Ending.NOT_STARTED: "not_started",
    Ending.LEASE_LOST: "cancelled",
    Ending.INTERRUPTED: "interrupted",
    Ending.ENVIRONMENT: "host_failure",
}


def error_type(result: RunResult) -> str | None:
    """None for a run that succeeded; else the class of its failure."""
    if result.succeeded:
        return None
    if result.ending is Ending.EXITED:
        # The executor words a death by signal so (128 + N is also a plain exit code).
        return "killed" if result.error.startswith("killed by signal") else "exit_code"
    return ERROR_TYPES[result.ending]


class Attempt:
    """Begun when a slot takes a job, ended once its outcome is written."""

    def __init__(self, tracing: Tracing, job: Fetched, worker_id: str) -> None:
        self.span = tracing.consume("process", job.queue, job.id, job.trace_context, {
            "messaging.operation.type": "process",
            "messaging.client.id": worker_id,
            "messaging.queuectl.attempt": job.attempts,
        })
        self._token = bind_job({"job_id": job.id, "queue": job.queue, "attempt": job.attempts,
                                "trace_id": self.span.trace_id, "span_id": self.span.span_id})

    def env(self) -> dict[str, str]:
        """TRACEPARENT (and TRACESTATE) for the job's command; empty when it has no trace."""
        return self.span.env()

    def end(self, result: RunResult, outcome: str | None) -> None:
        """Close the span with the run's exit code and status, and the DLQ move as an event
        when ``outcome`` (Reporter.report) is ``dead``."""
        span = self.span
        if result.exit_code is not None:
            span.set({"process.exit.code": result.exit_code})
        if outcome:
            span.set({"messaging.queuectl.outcome": outcome})
        kind = error_type(result)
        if kind is None:
            span.ok()
        else:
            span.error(kind, result.error)
        if outcome == "dead":
            span.event(DEAD_LETTER_EVENT, {"queuectl.reason": result.error,
                                           "messaging.destination.name": "dead_letter"})
        span.end()
        unbind_job(self._token)
