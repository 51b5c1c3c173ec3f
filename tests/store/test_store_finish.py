"""complete.lua, fail.lua and log_append.lua: fencing, logs, retention, retries and the DLQ."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import redis

from queuectl.core.errors import LeaseLostError
from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]
MakeDue = Callable[[Store, str], None]
StoreFactory = Callable[..., Store]


def snapshot(store: Store, job_id: str, worker: str = "w1") -> dict[str, Any]:
    """Every key a finishing script may write, as raw bytes."""
    k, r = store.keys, store.redis
    return {
        "job": r.hgetall(k.job(job_id)),
        "ttl": r.ttl(k.job(job_id)),
        "log": r.get(k.log(job_id)),
        "inflight": r.smembers(k.inflight(worker)),
        "completed": r.zrange(k.completed, 0, -1),
        "retry": r.zrange(k.retry_queue, 0, -1),
        "dead": r.lrange(k.dead_letter, 0, -1),
        "stats": r.hgetall(k.stats),
        "scheduler_wake": r.llen(k.scheduler_wake),
    }


def impostors(job: Fetched) -> list[tuple[Fetched, str]]:
    """A stale lease token, and the right token presented by another worker."""
    return [(dataclasses.replace(job, lease=job.lease - 1), "w1"),
            (dataclasses.replace(job, lease=job.lease + 1), "w1"),
            (job, "w2")]


# -- complete ----------------------------------------------------------------------------
def test_complete_records_success(store: Store, raw: redis.Redis, now: Now,
                                  lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="ok", command="echo hi", queue="q"))
    before = now()
    store.complete(job, "w1", b"hi\n", 3)
    record = raw.hgetall(k.job("ok"))
    assert record["state"] == "completed"
    assert record["exit_code"] == "0"
    assert record["last_error"] == ""
    assert before <= float(record["finished_at"]) <= now()
    assert record["log_size"] == "3"
    assert raw.get(k.log("ok")) == "hi\n"
    assert raw.smembers(k.inflight("w1")) == set()
    assert raw.zscore(k.completed, "ok") == pytest.approx(float(record["finished_at"]),
                                                          abs=1e-3)
    assert raw.hgetall(k.stats) == {"completed:q": "1"}


def test_ended_jobs_are_deleted_by_prune_after_the_ttl(store: Store, raw: redis.Redis,
                                                       lease: Lease, now: Now) -> None:
    # Retention is the scheduler's prune: the record, its output and both index entries
    # go in one step, so an index never lists a job whose record has gone.
    k = store.keys
    store.complete(lease(store, JobSpec(id="old", command="true", queue="q")), "w1", b"out", 3)
    store.complete(lease(store, JobSpec(id="new", command="true", queue="q")), "w1", b"", 0)
    store.enqueue(JobSpec(id="gave-up", command="true"))
    store.cancel("gave-up")
    assert raw.ttl(k.job("old")) == -1 and raw.ttl(k.log("old")) == -1
    assert store.prune() == 0  # the default keeps them a day
    raw.hset(k.config, "completed-ttl", "100")  # lowered: takes effect at once
    for job_id, zset in (("old", k.completed), ("gave-up", k.cancelled)):
        raw.zadd(zset, {job_id: now() - 1000})
    assert store.prune() == 2
    assert raw.exists(k.job("old"), k.log("old"), k.job("gave-up")) == 0
    assert raw.zrange(k.completed, 0, -1) == ["new"]
    assert raw.zrange(k.index("q", "completed"), 0, -1) == ["new"]
    assert raw.exists(k.cancelled, k.index("default", "cancelled")) == 0


def test_prune_drops_entries_whose_record_is_already_gone(store: Store, raw: redis.Redis,
                                                          now: Now) -> None:
    k = store.keys
    raw.zadd(k.completed, {"ghost": now() - 10**6})
    assert store.prune() == 1
    assert raw.exists(k.completed) == 0


def test_completed_ttl_zero_keeps_forever(store: Store, raw: redis.Redis, now: Now,
                                          lease: Lease) -> None:
    k = store.keys
    raw.hset(k.config, "completed-ttl", "0")
    job = lease(store, JobSpec(id="ok", command="true"))
    store.complete(job, "w1", b"out", 3)
    raw.zadd(k.completed, {"ok": now() - 10**8})
    assert store.prune() == 0
    assert raw.exists(k.job("ok"), k.log("ok")) == 2


def test_complete_caps_the_log_keeping_the_tail(make_store: StoreFactory, raw: redis.Redis,
                                                lease: Lease) -> None:
    store = make_store(log_cap=16)
    k = store.keys
    job = lease(store, JobSpec(id="big", command="true"))
    store.log_append(job, "w1", b"0123456789", 10)
    store.complete(job, "w1", b"abcdefghijklmnopqrstuvwxyz", 26)
    assert raw.get(k.log("big")) == "klmnopqrstuvwxyz"
    assert raw.hget(k.job("big"), "log_size") == "36"  # every byte produced is counted


def test_complete_is_fenced(store: Store, lease: Lease) -> None:
    job = lease(store, JobSpec(id="f", command="true"))
    before = snapshot(store, "f")
    for who, worker in impostors(job):
        with pytest.raises(LeaseLostError, match="lease on job f was lost"):
            store.complete(who, worker, b"intruder", 8)
        assert snapshot(store, "f") == before
    store.complete(job, "w1", b"", 0)  # the holder still can


def test_complete_twice_is_a_no_op_and_after_another_fetch_is_refused(
        store: Store, raw: redis.Redis, lease: Lease, make_due: MakeDue) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="f", command="true"))
    store.complete(job, "w1", b"", 0)
    after = snapshot(store, "f")
    # The same call again (as redis-py re-sends after a lost reply) is answered as
    # done, and writes nothing more.
    store.complete(job, "w1", b"again", 5)
    assert snapshot(store, "f") == after

    # A run that was taken over: the job failed, was retried and is now held again.
    old = lease(store, JobSpec(id="g", command="true"))
    store.fail(old, "w1", b"", 0, 1, "exit code 1")
    make_due(store, "g")
    new = store.fetch("w2", ["default"])
    assert new is not None and new.lease == old.lease + 1
    with pytest.raises(LeaseLostError):
        store.complete(old, "w1", b"", 0)
    assert raw.hget(k.job("g"), "state") == "processing"
    assert raw.hget(k.job("g"), "worker") == "w2"


# -- fail --------------------------------------------------------------------------------
def test_retry_delays_follow_the_backoff(store: Store, raw: redis.Redis, now: Now,
                                         lease: Lease, make_due: MakeDue) -> None:
    # base 2, factor 2, 3 retries: the note's 2 s, 4 s, 8 s, then the DLQ after 4 runs.
    k = store.keys
    job = lease(store, JobSpec(id="r", command="false", queue="q"))
    for attempt, delay in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        assert job.attempts == attempt
        outcome = store.fail(job, "w1", b"", 0, 1, "exit code 1")
        t = now()
        assert not outcome.dead
        assert outcome.retry_at is not None
        print(f"retry {attempt}: due in {outcome.retry_at - t:.3f}s (expected {delay}s)")
        assert abs(outcome.retry_at - t - delay) < 0.5
        assert raw.zscore(k.retry_queue, "r") == pytest.approx(outcome.retry_at, abs=1e-3)
        record = raw.hgetall(k.job("r"))
        assert record["state"] == "failed"
        assert float(record["run_at"]) == pytest.approx(outcome.retry_at, abs=1e-3)
        assert record["exit_code"] == "1"
        assert record["last_error"] == "exit code 1"
        assert raw.smembers(k.inflight("w1")) == set()
        make_due(store, "r")
        fetched = store.fetch("w1", ["q"])
        assert fetched is not None
        job = fetched
    assert job.attempts == 4
    outcome = store.fail(job, "w1", b"", 0, 2, "exit code 2")
    assert outcome.dead and outcome.retry_at is None
    record = raw.hgetall(k.job("r"))
    assert record["state"] == "dead"
    assert record["attempts"] == "4"  # 1 + max_retries runs
    assert record["run_at"] == ""
    assert record["exit_code"] == "2"
    assert raw.lrange(k.dead_letter, 0, -1) == ["r"]
    assert raw.zcard(k.retry_queue) == 0
    assert raw.hgetall(k.stats) == {"failed:q": "4", "retried:q": "3", "dead:q": "1"}


def run_until_dead(store: Store, job: Fetched, now: Now, make_due: MakeDue) -> list[int]:
    """Fail every run of a job; return the delays of its retries."""
    delays: list[int] = []
    while True:
        outcome = store.fail(job, "w1", b"", 0, 1, "exit code 1")
        if outcome.dead:
            return delays
        assert outcome.retry_at is not None
        delays.append(round(outcome.retry_at - now()))
        make_due(store, job.id)
        fetched = store.fetch("w1", [job.queue])
        assert fetched is not None
        job = fetched


def test_config_backoff_overrides_and_backoff_max_caps(store: Store, raw: redis.Redis,
                                                       now: Now, lease: Lease,
                                                       make_due: MakeDue) -> None:
    k = store.keys
    raw.hset(k.config, mapping={"backoff-base": "1", "backoff-factor": "3", "max-retries": "4"})
    job = lease(store, JobSpec(id="a", command="false"))
    assert run_until_dead(store, job, now, make_due) == [1, 3, 9, 27]
    raw.hset(k.config, "backoff-max", "5")
    job = lease(store, JobSpec(id="b", command="false"))
    assert run_until_dead(store, job, now, make_due) == [1, 3, 5, 5]


def test_policy_backoff_max_default_caps(make_store: StoreFactory, now: Now, lease: Lease,
                                         make_due: MakeDue) -> None:
    store = make_store(max_retries=3, backoff_base=2.0, backoff_factor=2.0, backoff_max=3.0)
    job = lease(store, JobSpec(id="a", command="false"))
    assert run_until_dead(store, job, now, make_due) == [2, 3, 3]


def test_max_retries_job_beats_config_beats_default(make_store: StoreFactory,
                                                    raw: redis.Redis, now: Now, lease: Lease,
                                                    make_due: MakeDue) -> None:
    store = make_store(max_retries=2, backoff_base=1.0, backoff_factor=1.0)
    k = store.keys
    default = lease(store, JobSpec(id="default", command="false"))
    assert len(run_until_dead(store, default, now, make_due)) == 2

    raw.hset(k.config, "max-retries", "1")
    config = lease(store, JobSpec(id="config", command="false"))
    assert len(run_until_dead(store, config, now, make_due)) == 1

    own = lease(store, JobSpec(id="own", command="false", max_retries=3))
    assert len(run_until_dead(store, own, now, make_due)) == 3
    never = lease(store, JobSpec(id="never", command="false", max_retries=0))
    assert run_until_dead(store, never, now, make_due) == []
    assert raw.hget(k.job("never"), "attempts") == "1"


def test_fail_without_exit_code_and_with_output(make_store: StoreFactory, raw: redis.Redis,
                                                lease: Lease) -> None:
    store = make_store(log_cap=8, max_retries=0)
    k = store.keys
    job = lease(store, JobSpec(id="t", command="sleep 100"))
    assert store.fail(job, "w1", b"partial output", 100, None, "timed out after 1s").dead
    record = raw.hgetall(k.job("t"))
    assert record["exit_code"] == ""
    assert record["last_error"] == "timed out after 1s"
    assert record["log_size"] == "100"
    assert raw.get(k.log("t")) == "l output"  # the last 8 bytes


def test_fail_wakes_the_scheduler_for_a_new_earliest_retry(store: Store, raw: redis.Redis,
                                                           lease: Lease) -> None:
    k = store.keys
    first = lease(store, JobSpec(id="first", command="false"))
    store.fail(first, "w1", b"", 0, 1, "exit code 1")
    assert raw.lpop(k.scheduler_wake) == "1"  # a sleeping scheduler took the marker
    second = lease(store, JobSpec(id="second", command="false"))
    # As retry number 2 it waits 4 s, later than "first": the scheduler's sleep is right.
    raw.hset(k.job("second"), "attempts", "2")
    store.fail(second, "w1", b"", 0, 1, "exit code 1")
    assert raw.llen(k.scheduler_wake) == 0
    raw.zadd(k.retry_queue, {"first": 10**10})  # "third" (due in 2 s) will be the earliest
    third = lease(store, JobSpec(id="third", command="false"))
    store.fail(third, "w1", b"", 0, 1, "exit code 1")
    assert raw.lrange(k.scheduler_wake, 0, -1) == ["1"]


def test_fail_is_fenced(store: Store, lease: Lease) -> None:
    job = lease(store, JobSpec(id="f", command="false"))
    before = snapshot(store, "f")
    for who, worker in impostors(job):
        with pytest.raises(LeaseLostError):
            store.fail(who, worker, b"intruder", 8, 1, "exit code 1")
        assert snapshot(store, "f") == before
    store.complete(job, "w1", b"", 0)
    after = snapshot(store, "f")
    with pytest.raises(LeaseLostError):
        store.fail(job, "w1", b"", 0, 1, "exit code 1")  # not processing any more
    assert snapshot(store, "f") == after


# -- log_append --------------------------------------------------------------------------
def test_log_append_accumulates_and_keeps_the_tail(make_store: StoreFactory,
                                                   raw: redis.Redis, lease: Lease) -> None:
    store = make_store(log_cap=10)
    k = store.keys
    job = lease(store, JobSpec(id="l", command="yes"))
    store.log_append(job, "w1", b"abc", 3)
    assert raw.get(k.log("l")) == "abc"
    store.log_append(job, "w1", b"defgh", 5)
    assert raw.get(k.log("l")) == "abcdefgh"
    store.log_append(job, "w1", b"ijklmn", 6)
    assert raw.get(k.log("l")) == "efghijklmn"
    # The worker caps a chunk before shipping it; produced still counts what it dropped.
    store.log_append(job, "w1", b"", 5000)
    assert raw.get(k.log("l")) == "efghijklmn"
    assert raw.hget(k.job("l"), "log_size") == str(3 + 5 + 6 + 5000)
    assert raw.hget(k.job("l"), "state") == "processing"


def test_log_append_stores_any_bytes(store: Store, lease: Lease) -> None:
    job = lease(store, JobSpec(id="bin", command="true"))
    data = bytes(range(256)) + b"\xff\xfe invalid utf-8 \x00"
    store.log_append(job, "w1", data, len(data))
    assert store.redis.get(store.keys.log("bin")) == data


def test_log_append_is_fenced(store: Store, lease: Lease) -> None:
    job = lease(store, JobSpec(id="f", command="true"))
    store.log_append(job, "w1", b"mine", 4)
    before = snapshot(store, "f")
    for who, worker in impostors(job):
        with pytest.raises(LeaseLostError):
            store.log_append(who, worker, b"intruder", 8)
        assert snapshot(store, "f") == before
    store.cancel("f")
    after = snapshot(store, "f")
    with pytest.raises(LeaseLostError):
        store.log_append(job, "w1", b"more", 4)
    assert snapshot(store, "f") == after


def test_jitter_spreads_retries_within_the_cap(make_store: StoreFactory, raw: redis.Redis,
                                               lease: Lease) -> None:
    # Off by default: the note's 2 s, 4 s, 8 s hold exactly (see above). Set, each delay is
    # spread by +/- the fraction of itself, never past backoff-max.
    store = make_store(max_retries=3, backoff_base=10.0, backoff_factor=1.0, backoff_max=11.0,
                       backoff_jitter=0.5)
    delays = []
    for i in range(40):
        job = lease(store, JobSpec(id=f"j{i}", command="false"))
        outcome = store.fail(job, "w1", b"", 0, 1, "exit code 1")
        record = raw.hgetall(store.keys.job(f"j{i}"))
        assert outcome.retry_at == float(record["run_at"]), "show displays the due time"
        delays.append(float(record["run_at"]) - float(record["finished_at"]))
    assert all(5.0 - 1e-3 <= d <= 11.0 + 1e-3 for d in delays), delays
    assert len({round(d, 2) for d in delays}) > 10, "spread, not lockstep"
    assert max(delays) == pytest.approx(11.0, abs=1e-3), "the cap still holds"
