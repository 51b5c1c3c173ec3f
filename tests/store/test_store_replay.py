"""A script call re-sent after its reply was lost (redis-py retries a command whose
connection dropped) must answer as the first call did, not refuse its own work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Script = Callable[[list[str], list[Any]], Any]


def enqueue_args(store: Store, job_id: str, token: str) -> tuple[list[str], list[Any]]:
    k = store.keys
    keys = [k.job(job_id), k.queue("default"), k.wake("default"), k.delayed, k.queues,
            k.dead_letter, k.completed, k.cancelled, k.log(job_id), k.scheduler_wake,
            k.quarantine, k.quarantine_why, k.index("default", "scheduled"),
            k.index("default", "dead"), k.index("default", "completed"),
            k.index("default", "cancelled")]
    return keys, [job_id, "default", "true", "", "", "", "0", "", token, "", "", ""]


def test_a_resent_enqueue_is_answered_as_stored(
        store: Store, lua: Callable[[str], Script], raw: redis.Redis) -> None:
    enqueue = lua("enqueue")
    keys, args = enqueue_args(store, "once", "tok-1")
    first = list(enqueue(keys, args))
    assert first[0] == 0 and float(first[1]) > 0 and first[2] == b""
    assert list(enqueue(keys, args)) == first, "the same call again is not a conflict"
    assert raw.lrange(store.keys.queue("default"), 0, -1) == ["once"], "stored once"
    # A different call with the same id is still refused.
    keys, other = enqueue_args(store, "once", "tok-2")
    assert [x if isinstance(x, int) else x.decode() for x in enqueue(keys, other)] == [
        -1, "pending"]


def test_a_resent_complete_succeeds_and_writes_nothing_more(
        store: Store, lease: Callable[..., Fetched], lua: Callable[[str], Script],
        raw: redis.Redis) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="c", command="true"))
    keys = [k.job("c"), k.inflight("w1"), k.completed, k.log("c"), k.stats, k.quarantine,
            k.quarantine_why, k.index("default", "completed"), k.queues]
    args = ["c", "w1", job.lease, b"out", 3, 1024, "default"]
    complete = lua("complete")
    assert complete(keys, args) == [0]
    assert complete(keys, args) == [0]
    assert raw.get(k.log("c")) == "out", "the chunk is not appended twice"
    assert raw.hget(k.stats, "completed:default") == "1"
    # Another lease is still fenced out.
    assert complete(keys, ["c", "w1", job.lease + 1, b"", 0, 1024, "default"]) == [-1]


def test_a_resent_fail_returns_the_same_outcome(
        store: Store, lease: Callable[..., Fetched], lua: Callable[[str], Script],
        raw: redis.Redis) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="f", command="false", max_retries=1))
    keys = [k.job("f"), k.inflight("w1"), k.retry_queue, k.dead_letter, k.log("f"), k.stats,
            k.scheduler_wake, k.quarantine, k.quarantine_why, k.index("default", "failed"),
            k.index("default", "dead"), k.queues]
    args = ["f", "w1", job.lease, b"", 0, 1024, 1, "exit code 1", 3, 2, 2, 0, 86400, "default",
            "0", "0.5"]
    fail = lua("fail")
    first = fail(keys, args)
    again = fail(keys, args)
    assert int(first[0]) == 1 and int(again[0]) == 1
    assert float(first[1]) == float(again[1])
    assert raw.hget(k.stats, "failed:default") == "1", "counted once"
    assert raw.zcard(k.retry_queue) == 1
