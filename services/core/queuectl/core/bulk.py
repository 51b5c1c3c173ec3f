"""Enqueueing many jobs: pipelined script calls that say exactly what was stored.

Each job is still one atomic enqueue script; a pipeline only saves round trips. What
a pipeline cannot do is stop half-way, so every reply of a chunk is read and counted,
and no further chunk is sent after one that had an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import redis

from queuectl.core.errors import QueueCtlError, RedisUnavailableError
from queuectl.core.models import JobSpec
from queuectl.core.scripting import PIPELINE_CHUNK, EnqueueResult, check_reply

if TYPE_CHECKING:
    from queuectl.core.store import Store

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


def enqueue_chunked(store: Store, specs: Iterable[JobSpec], *,
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
            _send(store, chunk, replace, results)
            chunk, size = [], 0
    if chunk:
        _send(store, chunk, replace, results)
    return results


def _send(store: Store, chunk: Sequence[JobSpec], replace: bool,
          results: list[EnqueueResult]) -> None:
    """One pipeline of enqueue scripts; every reply is read, in order, before raising."""
    start = len(results)
    pipe = store.redis.pipeline(transaction=False)
    for spec in chunk:
        store._enqueue_call(spec, replace, "", pipe)
    try:
        # redis-py re-sends the whole pipeline after a dropped connection: safe, because
        # each call carries its own token and the script answers a repeat as it did first.
        replies = pipe.execute(raise_on_error=False)
    except redis.RedisError as exc:
        raise BulkEnqueueError(exc, results, start, unsure=len(chunk)) from None
    first: tuple[int, Exception] | None = None
    for offset, (spec, reply) in enumerate(zip(chunk, replies, strict=True)):
        try:
            if isinstance(reply, Exception):
                raise reply
            results.append(store._enqueue_result(spec.id, check_reply(reply)))
        except (redis.RedisError, QueueCtlError) as exc:
            # A script runs whole or writes nothing (under maxmemory Redis refuses its
            # first write, and enqueue writes nothing before that), but a job after a
            # refused one in the same pipeline may still be stored: count every reply.
            if first is None:
                first = (start + offset, exc)
    if first is not None:
        refused = len(chunk) - (len(results) - start)
        raise BulkEnqueueError(first[1], results, first[0], refused=refused)
