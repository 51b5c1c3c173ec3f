"""Enqueueing: one job, or many in pipelined script calls that say exactly what was stored.

Each job is still one atomic enqueue script; a pipeline only saves round trips. What
a pipeline cannot do is stop half-way, so every reply of a chunk is read and counted,
and no further chunk is sent after one that had an error.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import redis

from queuectl.core.errors import ConflictError, QueueCtlError, RedisUnavailableError
from queuectl.core.models import JobSpec, JobState, valid_name
from queuectl.core.scripting import (
    PIPELINE_CHUNK,
    EnqueueResult,
    ScriptStore,
    as_str,
    check_reply,
    num,
)
from queuectl.core.tracing import NO_TRACING, JobSpan, Tracing

# A pipeline is also cut at this many bytes of commands: 1000 jobs of 128 KiB each would
# be a 128 MiB request (and as much memory in the client and in Redis's query buffer).
CHUNK_BYTES = 4 * 1024 * 1024


class BulkEnqueueError(QueueCtlError):
    """``enqueue_many`` stopped: Redis refused a job, or the connection was lost.

    ``results`` has one entry per job whose reply was read (stored, or skipped because
    its id exists), in input order; ``index`` is the input position of the first job
    that was not stored; ``refused`` jobs were answered with an error (nothing of them
    was written); ``unsure`` jobs were sent but their replies never came (they may or
    may not be stored). Jobs after the last one sent were never sent.
    """

    def __init__(self, cause: Exception, results: list[EnqueueResult], index: int, *,
                 refused: int = 0, unsure: int = 0) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.results = results
        self.index = index
        self.refused = refused
        self.unsure = unsure
        self.exit_code = (cause.exit_code if isinstance(cause, QueueCtlError)
                          else RedisUnavailableError.exit_code)

    @property
    def sent(self) -> int:
        """How many jobs of the input were sent to Redis."""
        return len(self.results) + self.refused + self.unsure


class EnqueueOps(ScriptStore):
    """Enqueueing; mixed into ``Store``.

    Each job enqueued gets a ``send`` span (when ``tracing`` is on) whose context is
    stored in its record, so that every attempt of the job joins that trace.
    """

    tracing: Tracing = NO_TRACING

    def _enqueue_call(self, spec: JobSpec, replace: bool, trace_context: str,
                      client: Any = None, old_queue: str = "", token: str = "") -> Any:
        k = self.keys
        run_at = spec.run_at.timestamp() if spec.run_at is not None else None
        # A replace removes the ended job from its own queue's indexes, which may not be
        # the new job's queue: the caller read it (the script checks it is still so).
        old = old_queue or spec.queue
        keys = [k.job(spec.id), k.queue(spec.queue), k.wake(spec.queue), k.delayed, k.queues,
                k.dead_letter, k.completed, k.cancelled, k.log(spec.id), k.scheduler_wake,
                k.quarantine, k.quarantine_why, k.index(spec.queue, "scheduled"),
                k.index(old, "dead"), k.index(old, "completed"), k.index(old, "cancelled")]
        args = [spec.id, spec.queue, spec.command, num(spec.max_retries), num(spec.timeout),
                num(run_at), "1" if replace else "0", trace_context,
                token or secrets.token_hex(8), spec.env_json(), old_queue]
        if client is not None:
            return self._run("enqueue", keys, args, client)
        # An acknowledged enqueue must survive a failover (QUEUECTL_REDIS_MIN_REPLICAS_ACK).
        return self._run_confirmed("enqueue", keys, args, f"job {spec.id} was")

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

    def _enqueue_one(self, spec: JobSpec, replace: bool, trace_context: str) -> Any:
        token = secrets.token_hex(8)
        old = self.queue_of(spec.id) if replace else ""
        for _ in range(3):
            reply = self._enqueue_call(spec, replace, trace_context, old_queue=old, token=token)
            if int(reply[0]) != -4:
                return reply
            old = self.queue_of(spec.id)  # the record changed since it was read
        raise ConflictError(f"job {spec.id} kept changing; try again")

    def enqueue(self, spec: JobSpec, *, replace: bool = False,
                trace_context: str = "") -> JobState:
        """Store one job; raises ConflictError if its id is taken.

        ``trace_context`` is stored as given when set (the caller traced the send); else
        a send span's is.
        """
        sending = nullcontext(JobSpan()) if trace_context else self.tracing.sending(
            spec.queue, spec.id)
        with sending as span:
            reply = self._enqueue_one(spec, replace, trace_context or span.context)
            result = self._enqueue_result(spec.id, reply)
            if result.state is None:
                raise ConflictError(result.error or "conflict")
            return result.state

    def _old_queues(self, chunk: Sequence[JobSpec]) -> list[str]:
        """For a replace, the queue each existing record names ("" when none), in one round
        trip: the ended job leaves its own queue's indexes."""
        pipe = self.redis.pipeline(transaction=False)
        for spec in chunk:
            pipe.hget(self.keys.job(spec.id), "queue")
        out = []
        for raw in pipe.execute(raise_on_error=False):
            name = as_str(raw) if isinstance(raw, bytes) else ""
            out.append(name if valid_name(name) else "")
        return out

    def enqueue_many(self, specs: Iterable[JobSpec], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """Store ``specs`` in pipelined chunks; one result per job, in order.

        A job whose id exists is a result with ``state=None`` and an ``error``, not a
        failure. At the first job Redis refuses, BulkEnqueueError says what was stored.
        """
        results: list[EnqueueResult] = []
        chunk: list[JobSpec] = []
        size = 0
        for spec in specs:
            chunk.append(spec)
            size += len(spec.command) + len(spec.env_json())
            if len(chunk) >= PIPELINE_CHUNK or size >= CHUNK_BYTES:
                self._send(chunk, replace, results)
                chunk, size = [], 0
        if chunk:
            self._send(chunk, replace, results)
        return results

    def _send(self, chunk: Sequence[JobSpec], replace: bool,
              results: list[EnqueueResult]) -> None:
        """One pipeline of enqueue scripts; every reply is read, in order, before raising."""
        olds = self._old_queues(chunk) if replace else [""] * len(chunk)
        spans = [self.tracing.send(spec.queue, spec.id) for spec in chunk]
        try:
            self._send_traced(chunk, olds, spans, replace, results)
        finally:
            for span in spans:
                span.end()

    def _send_traced(self, chunk: Sequence[JobSpec], olds: Sequence[str],
                     spans: Sequence[JobSpan], replace: bool,
                     results: list[EnqueueResult]) -> None:
        start = len(results)
        # On the prefix's server: a cluster pipeline carries no scripts, and a WAIT must
        # follow the writes on their connection.
        pipe = self.server_pipeline()
        for spec, old, span in zip(chunk, olds, spans, strict=True):
            self._enqueue_call(spec, replace, span.context, pipe, old_queue=old)
        confirming = self.confirm(pipe)
        try:
            # redis-py re-sends the whole pipeline after a dropped connection: safe, because
            # each call carries its own token and the script answers a repeat as it did first.
            replies = pipe.execute(raise_on_error=False)
            acked = replies.pop() if confirming else None
        except redis.RedisError as exc:
            for span in spans:
                span.error(type(exc).__name__, f"reply lost: {exc}")
            raise BulkEnqueueError(exc, results, start, unsure=len(chunk)) from None
        first: tuple[int, Exception] | None = None
        for offset, (spec, reply) in enumerate(zip(chunk, replies, strict=True)):
            span = spans[offset]
            try:
                if isinstance(reply, Exception):
                    raise reply
                done = check_reply(reply)
                if int(done[0]) == -4:  # the record changed since its queue was read
                    done = self._enqueue_one(spec, replace, span.context)
                results.append(self._enqueue_result(spec.id, done))
                if results[-1].state is None:
                    span.error("ConflictError", results[-1].error or "conflict")
            except (redis.RedisError, QueueCtlError) as exc:
                span.error(type(exc).__name__, str(exc))
                # A script runs whole or writes nothing (under maxmemory Redis refuses its
                # first write, and enqueue writes nothing before that), but a job after a
                # refused one in the same pipeline may still be stored: count every reply.
                if first is None:
                    first = (start + offset, exc)
        if first is not None:
            refused = len(chunk) - (len(results) - start)
            raise BulkEnqueueError(first[1], results, first[0], refused=refused)
        short = None if acked is None else self.replicas.short(
            0 if isinstance(acked, Exception) else acked, f"the {len(chunk)} jobs sent last were")
        if short is not None:
            raise BulkEnqueueError(short, results, start)
