"""Enqueueing: one job in one script call, or many in one script call per chunk.

A chunk (up to CHUNK_JOBS jobs or CHUNK_BYTES of them) is one enqueue_batch.lua call:
the script checks every job of the chunk before its first write, so a chunk is stored
whole or not at all, and after a chunk Redis refused nothing more is sent. The keys
every job shares (the delayed set, the queue names, the indexes of each queue) are
passed once per chunk, and the jobs' fields as one JSON document, which costs far
less to send than eleven arguments a job.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import redis

from queuectl.core.errors import ConflictError, QueueCtlError, RedisUnavailableError
from queuectl.core.models import Job, JobSpec, JobState, valid_name
from queuectl.core.scripting import (
    EnqueueResult,
    ScriptStore,
    as_str,
    check_reply,
    num,
)
from queuectl.core.tracing import NO_TRACING, JobSpan, Tracing

# Jobs in one chunk script. Larger chunks send fewer calls, but the script blocks Redis
# for the whole chunk (about 9 ms for 1,000 new jobs on 2 shared cores), and Lua's unpack
# takes at most a few thousand values (the queue's RPUSH, the EXISTS of every record).
CHUNK_JOBS = 1000
# A chunk is also cut at this many bytes of commands: 1000 jobs of 128 KiB each would
# be a 128 MiB request (and as much memory in the client and in Redis's query buffer).
CHUNK_BYTES = 4 * 1024 * 1024


# A validated job in the form its record stores it: id, queue, command, max_retries,
# timeout, run_at (epoch seconds) and env (compact JSON), "" for each one not given.
Row = tuple[str, str, str, str, str, str, str]


def row_size(row: Row) -> int:
    """What a job adds to its chunk's size (see CHUNK_BYTES)."""
    return len(row[2]) + len(row[6])


def chunk_full(jobs: int, size: int) -> bool:
    """Whether a chunk of ``jobs`` rows of ``size`` (``row_size`` summed) is cut here."""
    return jobs >= CHUNK_JOBS or size >= CHUNK_BYTES


@dataclass(frozen=True, slots=True)
class PreparedChunk:
    """One enqueue_batch.lua call, built and not yet sent (``EnqueueOps.prepare_chunk``)."""

    chunk: Sequence[Row]
    spans: Sequence[JobSpan]
    replace: bool
    keys: list[str]
    args: list[str]


def row_of(spec: JobSpec) -> Row:
    """The stored form of a validated job."""
    return (spec.id, spec.queue, spec.command,
            "" if spec.max_retries is None else str(spec.max_retries), num(spec.timeout),
            "" if spec.run_at is None else num(spec.run_at.timestamp()),
            spec.env_json() if spec.env else "")


def spec_of(row: Row) -> JobSpec:
    """The job a row was made from (``row_of`` undone)."""
    job_id, queue, command, retries, timeout, run_at, env = row
    return JobSpec.model_validate({
        "id": job_id, "queue": queue, "command": command,
        "max_retries": int(retries) if retries else None,
        "timeout": float(timeout) if timeout else None,
        "run_at": float(run_at) if run_at else None,
        "env": json.loads(env) if env else None})


@dataclass(frozen=True, slots=True)
class Stored:
    """What the enqueue script answered for a stored job: no read-back needed."""

    state: JobState
    created_at: float
    run_at: float | None
    trace_context: str

    def job(self, spec: JobSpec) -> Job:
        """The record as the script wrote it (a replace leaves no output behind)."""
        return Job(
            id=spec.id, command=spec.command, queue=spec.queue, state=self.state,
            max_retries=spec.max_retries, run_at=self.run_at,
            timeout=None if spec.timeout is None else float(num(spec.timeout)),
            created_at=self.created_at, updated_at=self.created_at,
            ready_at=self.created_at if self.state is JobState.PENDING else None,
            trace_context=self.trace_context or None, env=spec.env or {},
        )


class BulkEnqueueError(QueueCtlError):
    """``enqueue_many`` stopped: Redis refused a chunk, or the connection was lost.

    A chunk is stored whole or not at all. ``results`` has one entry per job of the
    chunks stored before (stored, or skipped because its id exists), in input order;
    ``index`` is the input position of the first job that was not stored (the first of
    the chunk that stopped it); ``refused`` jobs were answered with an error (nothing of
    their chunk was written); ``unsure`` jobs were sent but the reply never came (their
    chunk may or may not be stored). Jobs after the last chunk sent were never sent.
    After too few replicas confirmed a chunk, its jobs are in ``results`` (stored on the
    master) and ``index`` is its first.
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
                      old_queue: str, token: str, delay: float | None) -> Any:
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
                num(run_at), "1" if replace else "0", trace_context, token, spec.env_json(),
                old_queue, num(delay)]
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

    def _enqueue_one(self, spec: JobSpec, replace: bool, trace_context: str,
                     delay: float | None = None) -> Any:
        token = secrets.token_hex(8)
        old = self.queue_of(spec.id) if replace else ""
        for _ in range(3):
            reply = self._enqueue_call(spec, replace, trace_context, old, token, delay)
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
        return self.enqueue_stored(spec, replace=replace, trace_context=trace_context).state

    def enqueue_stored(self, spec: JobSpec, *, replace: bool = False, trace_context: str = "",
                       delay: float | None = None) -> Stored:
        """``enqueue`` in one script call, answering what the record now holds that the
        caller does not know (``Stored.job`` rebuilds the record). ``delay`` (seconds,
        when ``spec.run_at`` is None) counts from Redis's clock."""
        sending = nullcontext(JobSpan()) if trace_context else self.tracing.sending(
            spec.queue, spec.id)
        with sending as span:
            context = trace_context or span.context
            reply = self._enqueue_one(spec, replace, context, delay)
            result = self._enqueue_result(spec.id, reply)
            if result.state is None:
                raise ConflictError(result.error or "conflict")
            run_at = as_str(reply[2])
            return Stored(result.state, float(as_str(reply[1]) or 0),
                          float(run_at) if run_at else None, context)

    def _old_queues(self, ids: Sequence[str]) -> list[str]:
        """For a replace, the queue each existing record names ("" when none), in one round
        trip: the ended job leaves its own queue's indexes."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hget(self.keys.job(job_id), "queue")
        out = []
        for raw in pipe.execute(raise_on_error=False):
            name = as_str(raw) if isinstance(raw, bytes) else ""
            out.append(name if valid_name(name) else "")
        return out

    def enqueue_many(self, specs: Iterable[JobSpec], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """Store ``specs`` in chunks of one script call each; one result per job, in order.

        A job whose id exists is a result with ``state=None`` and an ``error``, not a
        failure. A chunk is stored whole or not at all; at the first chunk Redis refuses,
        BulkEnqueueError says what was stored.
        """
        return self.enqueue_rows((row_of(spec) for spec in specs), replace=replace)

    def enqueue_rows(self, rows: Iterable[Row], *,
                     replace: bool = False) -> list[EnqueueResult]:
        """``enqueue_many`` of jobs already validated and put in their stored form
        (``row_of``): what ``enqueue --file`` sends after checking every line."""
        results: list[EnqueueResult] = []
        chunk: list[Row] = []
        size = 0
        for row in rows:
            chunk.append(row)
            size += row_size(row)
            if chunk_full(len(chunk), size):
                self.send_chunk(self.prepare_chunk(chunk, replace), results)
                chunk, size = [], 0
        if chunk:
            self.send_chunk(self.prepare_chunk(chunk, replace), results)
        return results

    def prepare_chunk(self, chunk: Sequence[Row], replace: bool) -> PreparedChunk:
        """Everything one chunk script needs, ready to send (``send_chunk``); a chunk is
        cut as ``chunk_full`` says. With ``replace`` it reads the old queues (one round
        trip); else it touches no Redis, so that it may run while another chunk is sent."""
        olds = self._old_queues([row[0] for row in chunk]) if replace else None
        first = self.tracing.send(chunk[0][1], chunk[0][0])
        # Tracing off, a span is only the context every job of the chunk carries alike.
        spans = [first] * len(chunk) if first.span_id is None else [first] + [
            self.tracing.send(row[1], row[0]) for row in chunk[1:]]
        try:
            keys, args = self._batch_call(chunk, olds, spans, replace)
        except BaseException:
            for span in spans:
                span.end()
            raise
        return PreparedChunk(chunk, spans, replace, keys, args)

    def send_chunk(self, prepared: PreparedChunk, results: list[EnqueueResult]) -> None:
        """One chunk script; its results appended to ``results``, or BulkEnqueueError."""
        try:
            self._send_traced(prepared, results)
        finally:
            for span in prepared.spans:
                span.end()

    def _batch_call(self, chunk: Sequence[Row], olds: Sequence[str] | None,
                    spans: Sequence[JobSpan], replace: bool) -> tuple[list[str], list[str]]:
        """The keys and args of one enqueue_batch.lua call."""
        k = self.keys
        numbers: dict[str, int] = {}
        jobs: list[Any] = []  # ten values a job, flat: see enqueue_batch.lua
        for i, (job_id, queue, command, retries, timeout, run_at, env) in enumerate(chunk):
            old = olds[i] if olds is not None else ""
            jobs.extend([job_id, numbers.setdefault(queue, len(numbers) + 1), command, retries,
                         timeout, run_at, "", spans[i].context, env,
                         numbers.setdefault(old, len(numbers) + 1) if old else 0])
        keys = [k.delayed, k.queues, k.dead_letter, k.completed, k.cancelled,
                k.scheduler_wake, k.quarantine, k.quarantine_why]
        for name in numbers:
            keys += [k.queue(name), k.wake(name), k.index(name, "scheduled"),
                     k.index(name, "dead"), k.index(name, "completed"),
                     k.index(name, "cancelled")]
        job, log = k.job, k.log
        if replace:
            for row in chunk:
                keys += (job(row[0]), log(row[0]))
        else:  # only a replace deletes a job's old log
            keys += [job(row[0]) for row in chunk]
        payload = json.dumps(jobs, ensure_ascii=False, separators=(",", ":"))
        args = [str(len(numbers)), "1" if replace else "0", secrets.token_hex(8), payload,
                *numbers]
        return keys, args

    def _call_batch(self, keys: list[str], args: list[str]) -> tuple[Any, Any]:
        """Run one chunk script: its checked reply, and with replicas to wait for, how many
        confirmed it (the script and a WAIT on one connection), else None."""
        if not self.replicas.count:
            return self._run("enqueue_batch", keys, args), None
        pipe = self.server_pipeline()
        self._run("enqueue_batch", keys, args, pipe)
        self.confirm(pipe)
        reply, acked = pipe.execute(raise_on_error=False)
        if isinstance(reply, Exception):
            raise reply
        return check_reply(reply), acked

    def _answers(self, prepared: PreparedChunk, codes: str, flat: Sequence[Any],
                 results: list[EnqueueResult]) -> None:
        """One result a job of a chunk the script answered, in order."""
        if codes == "0" * len(prepared.chunk):
            # Every job stored as pending: the usual chunk, answered in one pass.
            pending = JobState.PENDING
            results.extend([EnqueueResult(row[0], pending) for row in prepared.chunk])
            return
        refused = {int(flat[i]) - 1: flat[i + 1:i + 3] for i in range(0, len(flat), 3)}
        pending, scheduled = JobState.PENDING, JobState.SCHEDULED
        for i, (row, span, code) in enumerate(zip(prepared.chunk, prepared.spans, codes,
                                                  strict=True)):
            if code in "01":  # stored
                results.append(EnqueueResult(row[0], pending if code == "0" else scheduled))
                continue
            if code == "4":  # the record changed since its queue was read
                answer = self._enqueue_one(spec_of(row), prepared.replace, span.context)
            else:
                answer = refused[i]
            results.append(self._enqueue_result(row[0], answer))
            if results[-1].state is None:
                span.error("ConflictError", results[-1].error or "conflict")

    def _send_traced(self, prepared: PreparedChunk, results: list[EnqueueResult]) -> None:
        chunk, spans = prepared.chunk, prepared.spans
        start = len(results)
        try:
            # redis-py re-sends a call after a dropped connection: safe, because the call
            # carries its own token and the script answers a repeat as it did first.
            reply, acked = self._call_batch(prepared.keys, prepared.args)
        except (redis.RedisError, QueueCtlError) as exc:
            # An answer (an error reply, a code the script refused with) says nothing of
            # the chunk was written; a lost connection leaves it unknown.
            lost = isinstance(exc, redis.ConnectionError | redis.TimeoutError)
            for span in spans:
                span.error(type(exc).__name__, f"reply lost: {exc}" if lost else str(exc))
            if lost:
                raise BulkEnqueueError(exc, results, start, unsure=len(chunk)) from None
            raise BulkEnqueueError(exc, results, start, refused=len(chunk)) from None
        self._answers(prepared, as_str(reply[1]), reply[2], results)
        short = None if acked is None else self.replicas.short(
            0 if isinstance(acked, Exception) else acked, f"the {len(chunk)} jobs sent last were")
        if short is not None:
            raise BulkEnqueueError(short, results, start)
