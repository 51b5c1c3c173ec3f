"""finish_fetch.lua: the outcome and the next fetch in one call, fenced like complete and fail.

The corrupted-key cases (every key of the wrong type, every record field garbage) are
in test_script_corruption.py's finish_fetch situations; these are the behaviours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import redis

from queuectl.core.errors import LeaseLostError
from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Quarantined, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]


def everything(r: redis.Redis, prefix: str) -> dict[str, Any]:
    """A DUMP of every key under the prefix: what "nothing is written" compares."""
    return {name: r.dump(name) for name in sorted(r.scan_iter(match=f"{prefix}:*"))}


def test_complete_then_next_job_in_one_call(store: Store, raw: redis.Redis, now: Now,
                                            lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="a", command="true", queue="q"))
    store.enqueue(JobSpec(id="b", command="echo b", queue="q", timeout=5))
    # The fetch's own moment: a spawn dated later could fall after a finish this fast.
    spawned = job.fetched_at
    done = store.finish_fetch(job, "w1", b"out\n", 4, spawned, None, ["q"], "9")
    assert done.failed is None and not done.empty
    assert raw.hget(k.job("b"), "fetch_tag") == "9", "the call's number, for reconcile"
    record = raw.hgetall(k.job("a"))
    assert record["state"] == "completed" and record["exit_code"] == "0"
    assert float(record["started_at"]) <= float(record["spawned_at"])
    assert float(record["spawned_at"]) <= float(record["finished_at"]) <= now()
    assert float(record["spawned_at"]) == pytest.approx(spawned, abs=1e-6)
    assert raw.get(k.log("a")) == "out\n" and record["log_size"] == "4"
    assert raw.zscore(k.completed, "a") is not None
    assert raw.zscore(k.index("q", "completed"), "a") is not None
    nxt = done.next
    assert nxt is not None
    assert (nxt.id, nxt.command, nxt.lease, nxt.attempts, nxt.timeout) == ("b", "echo b", 1, 1, 5)
    assert nxt.fetched_at == float(record["finished_at"])  # one script, one clock reading
    assert nxt.received > 0
    b = raw.hgetall(k.job("b"))
    assert (b["state"], b["worker"], b["spawned_at"]) == ("processing", "w1", "")
    assert raw.smembers(k.inflight("w1")) == {"b"}
    assert raw.llen(k.queue("q")) == 0


def test_fail_then_next_job(store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="a", command="false", queue="q", max_retries=1))
    store.enqueue(JobSpec(id="b", command="true", queue="q"))
    done = store.finish_fetch(job, "w1", b"", 0, None, (1, "exit code 1"), ["q"])
    assert done.failed is not None and not done.failed.dead
    assert done.failed.retry_at == float(raw.hgetall(k.job("a"))["run_at"])
    assert raw.zscore(k.retry_queue, "a") is not None
    assert raw.hget(k.job("a"), "spawned_at") in (None, "")
    assert done.next is not None and done.next.id == "b"
    # b has the config's 3 retries: a retry, and then nothing left to fetch.
    again = store.finish_fetch(done.next, "w1", b"", 0, None, (2, "exit code 2"), ["q"])
    assert again.failed is not None and not again.failed.dead
    assert raw.hget(k.job("b"), "exit_code") == "2"
    assert again.empty and again.next is None


def test_dead_then_next(store: Store, raw: redis.Redis, lease: Lease) -> None:
    job = lease(store, JobSpec(id="a", command="false", queue="q", max_retries=0))
    store.enqueue(JobSpec(id="b", command="true", queue="q"))
    done = store.finish_fetch(job, "w1", b"", 0, None, (1, "exit code 1"), ["q"])
    assert done.failed is not None and done.failed.dead
    assert raw.lrange(store.keys.dead_letter, 0, -1) == ["a"]
    assert done.next is not None and done.next.id == "b"


def test_priority_order_and_empty(store: Store, lease: Lease) -> None:
    job = lease(store, JobSpec(id="a", command="true", queue="low"))
    store.enqueue(JobSpec(id="l", command="true", queue="low"))
    store.enqueue(JobSpec(id="h", command="true", queue="high"))
    done = store.finish_fetch(job, "w1", b"", 0, None, None, ["high", "low"])
    assert done.next is not None and done.next.id == "h"
    done = store.finish_fetch(done.next, "w1", b"", 0, None, None, ["high", "low"])
    assert done.next is not None and done.next.id == "l"
    done = store.finish_fetch(done.next, "w1", b"", 0, None, None, ["high", "low"])
    assert done.next is None and done.empty


def test_no_queues_records_the_outcome_only(store: Store, raw: redis.Redis,
                                            lease: Lease) -> None:
    """A draining slot fetches nothing."""
    job = lease(store, JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    done = store.finish_fetch(job, "w1", b"", 0, None, None, [])
    assert done.next is None and not done.empty
    assert raw.hget(store.keys.job("a"), "state") == "completed"
    assert raw.hget(store.keys.job("b"), "state") == "pending"


@pytest.mark.parametrize("failure", [None, (1, "exit code 1")])
def test_lost_lease_writes_nothing_and_fetches_nothing(
        store: Store, raw: redis.Redis, lease: Lease, failure: tuple[int, str] | None) -> None:
    job = lease(store, JobSpec(id="a", command="true", max_retries=2))
    store.enqueue(JobSpec(id="b", command="true"))
    before = everything(raw, store.keys.prefix)
    for stale, worker in [(dataclasses.replace(job, lease=job.lease + 1), "w1"), (job, "w2")]:
        with pytest.raises(LeaseLostError):
            store.finish_fetch(stale, worker, b"x", 1, None, failure, ["default"])
    assert everything(raw, store.keys.prefix) == before


def test_a_resent_call_finds_its_outcome_and_fetches_again(store: Store, raw: redis.Redis,
                                                           lease: Lease) -> None:
    """A reply lost on the way: redis-py re-sends the call. The outcome is answered as the
    first call wrote it; the job the first call leased stays in the in-flight set, where
    the worker's reconcile hands it back (tests/integration/test_recovery.py)."""
    job = lease(store, JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    store.enqueue(JobSpec(id="c", command="true"))
    first = store.finish_fetch(job, "w1", b"", 0, None, None, ["default"])
    second = store.finish_fetch(job, "w1", b"", 0, None, None, ["default"])
    assert first.next is not None and second.next is not None
    assert (first.next.id, second.next.id) == ("b", "c")
    assert raw.smembers(store.keys.inflight("w1")) == {"b", "c"}


def test_an_unusable_next_record_is_quarantined_and_the_one_after_taken(
        store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="bad", command="true"))
    store.enqueue(JobSpec(id="good", command="true"))
    raw.hset(k.job("bad"), "attempts", "many")
    done = store.finish_fetch(job, "w1", b"", 0, None, None, ["default"])
    assert done.next is not None and done.next.id == "good"
    assert raw.zscore(k.quarantine, "bad") is not None
    assert raw.hget(k.job("bad"), "attempts") == "many"  # left as found


def test_an_unusable_finished_record_is_quarantined_and_nothing_fetched(
        store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    raw.hset(k.job("a"), "lease", "x")
    with pytest.raises(Quarantined):
        store.finish_fetch(job, "w1", b"", 0, None, None, ["default"])
    assert raw.zscore(k.quarantine, "a") is not None
    assert raw.smembers(k.inflight("w1")) == set()
    assert raw.hget(k.job("b"), "state") == "pending"


def test_wake_lists_are_left_alone(store: Store, raw: redis.Redis, lease: Lease) -> None:
    """A busy slot's fetch takes no marker, so it puts none back (fetch.lua re-arms)."""
    k = store.keys
    job = lease(store, JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    store.enqueue(JobSpec(id="c", command="true"))
    raw.delete(k.wake("default"))
    store.finish_fetch(job, "w1", b"", 0, None, None, ["default"])
    assert raw.llen(k.wake("default")) == 0


def test_fetch_rearms_only_a_queue_that_still_has_entries(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    raw.delete(k.wake("default"))
    assert store.fetch("w1", ["default"]) is not None
    assert raw.llen(k.wake("default")) == 1  # b waits: an idle worker is woken for it
    raw.delete(k.wake("default"))
    assert store.fetch("w1", ["default"]) is not None
    assert raw.llen(k.wake("default")) == 0  # nothing left: no marker
