"""reap.lua: the jobs of a worker whose heartbeat expired go back to the front of their
queue, without consuming a retry; a job that keeps losing its worker is buried."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from queuectl.core.errors import LeaseLostError
from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Lease = Callable[..., Fetched]


def beat(store: Store, worker: str, ttl: float = 10.0) -> None:
    k = store.keys
    store.heartbeat(k.worker(worker), k.workers, worker, ttl, "t", {"id": worker})


def kill(store: Store, worker: str, ago: float = 60.0) -> None:
    """Make a worker look dead: status hash gone, last beat ``ago`` seconds back."""
    k = store.keys
    secs, micros = store.redis.time()
    store.redis.delete(k.worker(worker))
    store.redis.zadd(k.workers, {worker: secs + micros / 1e6 - ago})


def test_a_live_worker_is_left_alone(store: Store, lease: Lease, raw: redis.Redis) -> None:
    job = lease(store, JobSpec(id="a", command="sleep 9"))
    beat(store, "w1")
    assert store.dead_workers(5.0) == []
    assert store.reap_worker("w1", 5.0) is None
    assert raw.hget(store.keys.job(job.id), "state") == "processing"


def test_a_beat_within_the_ttl_keeps_the_worker_even_without_its_hash(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    lease(store, JobSpec(id="a", command="sleep 9"))
    kill(store, "w1", ago=1.0)  # its hash expired early, but it beat a second ago
    assert store.reap_worker("w1", 5.0) is None
    assert raw.hget(store.keys.job("a"), "state") == "processing"


def test_no_worker_is_late_before_redis_has_been_up_a_ttl(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    # A restart quicker than the clients' retries is no outage the scheduler sees, yet
    # no worker could beat meanwhile: a TTL longer than Redis's uptime reaps nobody.
    lease(store, JobSpec(id="a", command="sleep 9"))
    uptime = int(raw.info("server")["uptime_in_seconds"])
    kill(store, "w1", ago=uptime + 7200.0)
    assert store.dead_workers(uptime + 3600.0) == ["w1"]
    assert store.reap_worker("w1", uptime + 3600.0) is None
    assert raw.hget(store.keys.job("a"), "state") == "processing"
    assert raw.sismember(store.keys.inflight("w1"), "a")
    # Once Redis has been up longer than the TTL, the same worker is dead.
    result = store.reap_worker("w1", 5.0)
    assert result is not None and result.requeued == 1


def test_dead_workers_jobs_go_to_the_front_without_using_a_retry(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    k = store.keys
    held = lease(store, JobSpec(id="held", command="sleep 9", max_retries=0))
    other = lease(store, JobSpec(id="other", command="sleep 9", queue="low"), worker="w2")
    store.enqueue(JobSpec(id="next", command="true"))
    beat(store, "w2")
    kill(store, "w1")
    raw.delete(k.wake("default"))

    assert store.dead_workers(5.0) == ["w1"]
    result = store.reap_worker("w1", 5.0)
    assert result is not None and (result.requeued, result.buried) == (1, 0)

    record = raw.hgetall(k.job("held"))
    assert record["state"] == "pending"
    assert (record["attempts"], record["lost"], record["interrupted"]) == ("1", "1", "1")
    assert "w1 lost" in record["last_error"]
    assert raw.lrange(k.queue("default"), 0, -1) == ["held", "next"]
    assert raw.lrange(k.wake("default"), 0, -1) == ["1"]
    # The dead worker leaves the registry; the live one and its job are untouched.
    assert raw.zscore(k.workers, "w1") is None
    assert raw.exists(k.inflight("w1")) == 0
    assert raw.hget(k.job(other.id), "state") == "processing"

    # The interrupted run consumed no retry: with max_retries 0 a failure of the
    # next run is its first failure, so it goes straight to the DLQ, not earlier.
    again = store.fetch("w3", ["default"])
    assert again is not None and again.id == "held" and again.attempts == 2
    outcome = store.fail(again, "w3", b"", 0, 1, "exit code 1")
    assert outcome.dead
    # And the dead worker, had it only been paused, is fenced out.
    with pytest.raises(LeaseLostError):
        store.complete(held, "w1", b"late", 4)


def test_a_lost_run_does_not_count_as_a_failure_for_backoff(
        store: Store, lease: Lease, raw: redis.Redis, now: Callable[[], float]) -> None:
    lease(store, JobSpec(id="j", command="false", max_retries=3))
    kill(store, "w1")
    store.reap_worker("w1", 5.0)
    again = store.fetch("w2", ["default"])
    assert again is not None
    outcome = store.fail(again, "w2", b"", 0, 1, "exit code 1")
    assert not outcome.dead and outcome.retry_at is not None
    # First failure: retry 1 waits backoff_base = 2 s (not 4 s as a second failure would).
    assert abs(outcome.retry_at - now() - 2.0) < 0.5


def test_a_job_that_keeps_killing_its_worker_is_buried(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    k = store.keys
    raw.hset(k.config, "max-lost", "2")
    lease(store, JobSpec(id="poison", command="kill -9 $PPID", max_retries=5))
    kill(store, "w1")
    first = store.reap_worker("w1", 5.0)
    assert first is not None and first.requeued == 1
    assert [(m.id, m.queue, m.source) for m in first.jobs] == [("poison", "default", "requeued")]
    secs, micros = raw.time()
    assert float(raw.hget(k.job("poison"), "ready_at") or 0) == pytest.approx(
        secs + micros / 1e6, abs=5)
    again = store.fetch("w2", ["default"])
    assert again is not None and again.id == "poison"
    kill(store, "w2")
    second = store.reap_worker("w2", 5.0)
    assert second is not None and (second.requeued, second.buried) == (0, 1)
    assert [(m.id, m.source) for m in second.jobs] == [("poison", "buried")]
    record = raw.hgetall(k.job("poison"))
    assert record["state"] == "dead"
    assert record["lost"] == "2"
    assert "2 runs lost their worker" in record["last_error"]
    assert raw.lrange(k.dead_letter, 0, -1) == ["poison"]
    assert raw.hget(k.stats, "dead:default") == "1"


def test_jobs_that_moved_on_are_only_dropped_from_the_set(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    k = store.keys
    lease(store, JobSpec(id="c", command="sleep 9"))
    store.cancel("c")
    raw.sadd(k.inflight("w1"), "c")  # a stale entry, as a crash between two writes leaves
    kill(store, "w1")
    result = store.reap_worker("w1", 5.0)
    assert result is not None and (result.requeued, result.buried) == (0, 0)
    assert raw.hget(k.job("c"), "state") == "cancelled"
    assert raw.exists(k.inflight("w1")) == 0


def test_two_reapers_hand_a_job_back_once(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    k = store.keys
    lease(store, JobSpec(id="once", command="sleep 9"))
    kill(store, "w1")
    first = store.reap_worker("w1", 5.0)
    second = store.reap_worker("w1", 5.0)
    assert first is not None and first.requeued == 1
    assert second is not None and second.requeued == 0
    assert raw.lrange(k.queue("default"), 0, -1) == ["once"]
    assert raw.hget(k.job("once"), "lost") == "1"


def test_many_jobs_are_reaped_in_batches(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    for i in range(1500):
        store.enqueue(JobSpec(id=f"j{i}", command="true"))
    taken = 0
    while store.fetch("w1", ["default"]) is not None:
        taken += 1
    assert taken == 1500
    kill(store, "w1")
    result = store.reap_worker("w1", 5.0)
    assert result is not None and result.requeued == 1500
    assert raw.llen(k.queue("default")) == 1500
    assert raw.zscore(k.workers, "w1") is None
