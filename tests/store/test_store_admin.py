"""dlq_retry.lua, cancel.lua, purge.lua and release.lua."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from queuectl.core.errors import ConflictError, LeaseLostError, NotFoundError
from queuectl.core.models import JobSpec, JobState
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]
MakeDue = Callable[[Store, str], None]
StoreFactory = Callable[..., Store]


@pytest.fixture
def dlq_store(make_store: StoreFactory) -> Store:
    """One retry, so that a job is dead after two failed runs."""
    return make_store(max_retries=1, backoff_base=1.0, backoff_factor=1.0)


def bury(store: Store, lease: Lease, make_due: MakeDue, job_id: str,
         queue: str = "default") -> None:
    """Fail every run of a new job until it is dead."""
    job = lease(store, JobSpec(id=job_id, command="false", queue=queue))
    while not store.fail(job, "w1", b"out", 3, 1, "exit code 1").dead:
        make_due(store, job_id)
        fetched = store.fetch("w1", [queue])
        assert fetched is not None
        job = fetched


# -- dlq_retry ---------------------------------------------------------------------------
def test_dlq_retry_gives_fresh_retries(dlq_store: Store, raw: redis.Redis, lease: Lease,
                                       make_due: MakeDue) -> None:
    store, k = dlq_store, dlq_store.keys
    bury(store, lease, make_due, "d", queue="q")
    assert raw.hget(k.job("d"), "attempts") == "2"
    raw.delete(k.wake("q"))

    assert store.dlq_retry(["d"]).moved == 1
    record = raw.hgetall(k.job("d"))
    assert record["state"] == "pending"
    assert record["attempts"] == "0"
    for cleared in ("exit_code", "last_error", "finished_at", "started_at", "worker", "run_at"):
        assert record[cleared] == ""
    assert raw.llen(k.dead_letter) == 0
    assert raw.lrange(k.queue("q"), 0, -1) == ["d"]
    assert raw.lrange(k.wake("q"), 0, -1) == ["1"]

    # A fresh set: the first failure after the retry is retried again, not buried.
    job = store.fetch("w1", ["q"])
    assert job is not None and job.attempts == 1
    assert not store.fail(job, "w1", b"", 0, 1, "exit code 1").dead


def test_dlq_retry_leaves_jobs_that_are_not_dead(dlq_store: Store, raw: redis.Redis) -> None:
    store, k = dlq_store, dlq_store.keys
    store.enqueue(JobSpec(id="p", command="true"))
    raw.rpush(k.dead_letter, "p")  # a stray entry: the record says pending
    assert store.dlq_retry(["p", "unknown"]).moved == 0
    assert raw.lrange(k.queue("default"), 0, -1) == ["p"]
    assert raw.lrange(k.dead_letter, 0, -1) == ["p"]
    assert raw.hget(k.job("p"), "state") == "pending"


def test_dlq_retry_twice_moves_once(dlq_store: Store, raw: redis.Redis, lease: Lease,
                                    make_due: MakeDue) -> None:
    store, k = dlq_store, dlq_store.keys
    bury(store, lease, make_due, "d")
    assert store.dlq_retry(["d", "d"]).moved == 1
    assert store.dlq_retry(["d"]).moved == 0
    assert raw.lrange(k.queue("default"), 0, -1) == ["d"]


def test_dlq_retry_of_many_in_chunks(dlq_store: Store, raw: redis.Redis) -> None:
    store, k = dlq_store, dlq_store.keys
    ids = [f"d{i}" for i in range(1200)]
    store.enqueue_many(JobSpec(id=i, command="false") for i in ids)
    raw.delete(k.queue("default"))
    pipe = raw.pipeline()
    for i in ids:
        pipe.hset(k.job(i), "state", "dead")
        pipe.rpush(k.dead_letter, i)
    pipe.execute()
    assert store.dlq_retry(ids).moved == 1200
    assert raw.lrange(k.queue("default"), 0, -1) == ids
    assert raw.llen(k.dead_letter) == 0


# -- cancel ------------------------------------------------------------------------------
def cancelled_ok(raw: redis.Redis, store: Store, job_id: str, now: Now) -> None:
    k = store.keys
    record = raw.hgetall(k.job(job_id))
    assert record["state"] == "cancelled"
    assert record["last_error"] == "cancelled"
    assert record["run_at"] == ""
    assert abs(float(record["finished_at"]) - now()) < 5
    assert raw.zscore(k.cancelled, job_id) == pytest.approx(float(record["finished_at"]),
                                                            abs=1e-3)
    assert raw.zscore(k.index(str(record["queue"]), "cancelled"), job_id) == raw.zscore(
        k.cancelled, job_id)
    # Kept until the scheduler's prune, completed-ttl after it ended: no TTL of its own.
    assert raw.ttl(k.job(job_id)) == -1


def test_cancel_pending(store: Store, raw: redis.Redis, now: Now) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="a", command="true", queue="q"))
    store.enqueue(JobSpec(id="b", command="true", queue="q"))
    assert store.cancel("a") is JobState.PENDING
    cancelled_ok(raw, store, "a", now)
    assert raw.lrange(k.queue("q"), 0, -1) == ["b"]


def test_cancel_scheduled(store: Store, raw: redis.Redis, now: Now) -> None:
    from datetime import UTC, datetime

    k = store.keys
    store.enqueue(JobSpec(id="s", command="true", run_at=datetime.fromtimestamp(now() + 60, UTC)))
    assert store.cancel("s") is JobState.SCHEDULED
    cancelled_ok(raw, store, "s", now)
    assert raw.zcard(k.delayed) == 0
    assert store.promote_due(10).moved == 0


def test_cancel_failed_waiting_for_retry(store: Store, raw: redis.Redis, now: Now,
                                         lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="f", command="false"))
    store.fail(job, "w1", b"first run output", 16, 1, "exit code 1")
    assert store.cancel("f") is JobState.FAILED
    cancelled_ok(raw, store, "f", now)
    assert raw.zcard(k.retry_queue) == 0
    # The earlier run's output stays with the record until prune deletes both.
    assert raw.exists(k.log("f")) == 1  # its output stays with the record until prune


def test_cancel_processing_fences_the_worker(store: Store, raw: redis.Redis, now: Now,
                                             lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="p", command="sleep 100"))
    store.log_append(job, "w1", b"running...", 10)
    assert store.cancel("p") is JobState.PROCESSING
    cancelled_ok(raw, store, "p", now)
    assert raw.hget(k.job("p"), "lease") == str(job.lease + 1)
    assert raw.smembers(k.inflight("w1")) == set()
    assert raw.exists(k.log("p")) == 1  # its output stays with the record until prune
    before = raw.hgetall(k.job("p"))
    with pytest.raises(LeaseLostError):
        store.complete(job, "w1", b"done", 4)
    with pytest.raises(LeaseLostError):
        store.fail(job, "w1", b"", 0, 1, "exit code 1")
    with pytest.raises(LeaseLostError):
        store.log_append(job, "w1", b"more", 4)
    with pytest.raises(LeaseLostError):
        store.release(job, "w1")
    assert raw.hgetall(k.job("p")) == before
    assert raw.get(k.log("p")) == "running..."
    assert raw.zcard(k.completed) == 0 and raw.zcard(k.retry_queue) == 0


def test_cancel_with_completed_ttl_zero_keeps_forever(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    raw.hset(k.config, "completed-ttl", "0")
    store.enqueue(JobSpec(id="a", command="true"))
    store.cancel("a")
    assert raw.ttl(k.job("a")) == -1


@pytest.mark.parametrize("end", ["completed", "cancelled", "dead"])
def test_cancel_of_an_ended_job_is_a_conflict(end: str, dlq_store: Store, raw: redis.Redis,
                                              lease: Lease, make_due: MakeDue) -> None:
    store, k = dlq_store, dlq_store.keys
    if end == "dead":
        bury(store, lease, make_due, "e")
    else:
        job = lease(store, JobSpec(id="e", command="true"))
        if end == "completed":
            store.complete(job, "w1", b"", 0)
        else:
            store.cancel("e")
    before = raw.hgetall(k.job("e"))
    with pytest.raises(ConflictError, match=f"already ended \\({end}\\)"):
        store.cancel("e")
    assert raw.hgetall(k.job("e")) == before


def test_cancel_of_an_unknown_job(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no job nope"):
        store.cancel("nope")


# -- purge -------------------------------------------------------------------------------
def test_purge_deletes_dead_jobs_and_their_output(dlq_store: Store, raw: redis.Redis,
                                                  lease: Lease, make_due: MakeDue) -> None:
    store, k = dlq_store, dlq_store.keys
    bury(store, lease, make_due, "d1")
    bury(store, lease, make_due, "d2")
    store.enqueue(JobSpec(id="alive", command="true"))
    raw.rpush(k.dead_letter, "ghost")  # its record was deleted by hand
    assert store.purge_dlq() == 3
    for gone in ("d1", "d2"):
        assert raw.exists(k.job(gone), k.log(gone)) == 0
    assert raw.llen(k.dead_letter) == 0
    assert raw.hget(k.job("alive"), "state") == "pending"
    assert store.purge_dlq() == 0


def test_purge_leaves_a_job_retried_meanwhile(dlq_store: Store, raw: redis.Redis) -> None:
    store, k = dlq_store, dlq_store.keys
    store.enqueue(JobSpec(id="back", command="true"))
    raw.rpush(k.dead_letter, "back")  # read as dead, but retried before the purge ran
    assert store.purge_dlq() == 0
    assert raw.hget(k.job("back"), "state") == "pending"


def test_purge_of_more_than_one_batch(dlq_store: Store, raw: redis.Redis) -> None:
    store, k = dlq_store, dlq_store.keys
    pipe = raw.pipeline()
    for i in range(2500):
        pipe.hset(k.job(f"d{i}"), mapping={"id": f"d{i}", "state": "dead"})
        pipe.set(k.log(f"d{i}"), "x")
        pipe.rpush(k.dead_letter, f"d{i}")
    pipe.execute()
    assert store.purge_dlq() == 2500
    assert raw.keys(f"{k.prefix}:*") == []


# -- release (worker shutdown) -----------------------------------------------------------
def test_release_hands_the_job_back_to_the_front(store: Store, raw: redis.Redis,
                                                 lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="held", command="sleep 100"))
    store.enqueue(JobSpec(id="next", command="true"))
    raw.delete(k.wake("default"))
    store.release(job, "w1")
    record = raw.hgetall(k.job("held"))
    assert record["state"] == "pending"
    assert record["attempts"] == "1"  # the run did start...
    assert record["interrupted"] == "1"  # ...but it consumes no retry
    assert raw.lrange(k.queue("default"), 0, -1) == ["held", "next"]
    assert raw.smembers(k.inflight("w1")) == set()
    assert raw.lrange(k.wake("default"), 0, -1) == ["1"]
    again = store.fetch("w2", ["default"])
    assert again is not None and again.id == "held"
    assert again.attempts == 2 and again.lease == job.lease + 1
    with pytest.raises(LeaseLostError):
        store.release(job, "w1")  # the old holder can no longer touch it
