"""enqueue_batch.lua: a chunk of jobs in one call, written as enqueue.lua writes one job,
stored whole or not at all."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from queuectl.core.enqueueing import CHUNK_JOBS, BulkEnqueueError, row_of, spec_of
from queuectl.core.errors import DataError
from queuectl.core.models import JobSpec, JobState
from queuectl.core.store import Fetched, Store
from queuectl.core.tracing import JobSpan

Lease = Callable[..., Fetched]
Script = Callable[[list[str], list[Any]], Any]
# Fields that differ between two enqueues of the same job by nature (time, token).
VARYING = {"created_at", "updated_at", "ready_at", "enqueue_token"}
IN_A_DAY = datetime.now(UTC) + timedelta(days=1)


def specs_of_every_kind(tag: str) -> list[JobSpec]:
    return [
        JobSpec(id=f"{tag}plain", command="echo hi"),
        JobSpec(id=f"{tag}named", command="true", queue="batch", max_retries=2, timeout=1.5),
        JobSpec(id=f"{tag}env", command="env", env={"REGION": "eu", "X": "ü"}),
        JobSpec(id=f"{tag}later", command="date", queue="batch", run_at=IN_A_DAY),
        JobSpec(id=f"{tag}past", command="date", run_at=datetime(2001, 1, 1, tzinfo=UTC)),
    ]


def record(raw: redis.Redis, store: Store, job_id: str) -> dict[str, str]:
    rec: dict[str, str] = raw.hgetall(store.keys.job(job_id))  # type: ignore[assignment]
    return {k: v for k, v in rec.items() if k not in VARYING}


def test_a_chunk_writes_what_one_enqueue_writes(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    for spec in specs_of_every_kind("one-"):
        store.enqueue(spec, trace_context="ctx")
    results = store.enqueue_many(specs_of_every_kind("many-"))
    assert [r.state for r in results] == [JobState.PENDING, JobState.PENDING, JobState.PENDING,
                                          JobState.SCHEDULED, JobState.PENDING]
    for one, many in zip(specs_of_every_kind("one-"), specs_of_every_kind("many-"), strict=True):
        got = record(raw, store, many.id)
        want = record(raw, store, one.id) | {"id": many.id, "trace_context": ""}
        assert got == want
        stamp = raw.hmget(k.job(many.id), "created_at", "updated_at", "ready_at")
        assert stamp[0] == stamp[1] and stamp[2] in (stamp[0], None)
    assert raw.lrange(k.queue("default"), 0, -1) == [
        "one-plain", "one-env", "one-past", "many-plain", "many-env", "many-past"]
    assert raw.lrange(k.queue("batch"), 0, -1) == ["one-named", "many-named"]
    assert raw.zrange(k.delayed, 0, -1, withscores=True) == raw.zrange(
        k.index("batch", "scheduled"), 0, -1, withscores=True)
    assert set(raw.zrange(k.delayed, 0, -1)) == {"one-later", "many-later"}
    assert raw.smembers(k.queues) == {"default", "batch"}
    assert raw.llen(k.wake("default")) == 1 and raw.llen(k.wake("batch")) == 1


def test_a_bad_key_in_a_chunk_writes_nothing_of_it(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.job("m0700"), "not a hash")  # planted in the middle of the second chunk
    specs = [JobSpec(id=f"m{i:04d}", command="true") for i in range(1900)]
    with pytest.raises(BulkEnqueueError) as caught:
        store.enqueue_many(specs[1500:] + specs[600:800])
    exc = caught.value
    assert isinstance(exc.cause, DataError) and "m0700" in str(exc.cause)
    assert (exc.index, exc.refused, exc.unsure, exc.results) == (0, 600, 0, [])
    # None of that chunk was stored, not even the jobs before the bad one.
    assert raw.exists(k.job("m1500"), k.job("m0600"), k.job("m0799")) == 0


def test_a_chunk_before_the_refused_one_is_kept_and_reported(
        store: Store, raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.job("x1500"), "not a hash")
    specs = [JobSpec(id=f"x{i:04d}", command="true") for i in range(2 * CHUNK_JOBS)]
    with pytest.raises(BulkEnqueueError) as caught:
        store.enqueue_many(specs)
    exc = caught.value
    assert (exc.index, exc.refused, exc.sent, exc.exit_code) == (
        CHUNK_JOBS, CHUNK_JOBS, 2 * CHUNK_JOBS, 8)
    assert [r.id for r in exc.results] == [s.id for s in specs[:CHUNK_JOBS]]
    assert raw.llen(k.queue("default")) == CHUNK_JOBS
    assert raw.exists(k.job("x1000")) == 0


def test_an_id_twice_in_a_chunk_is_stored_once(store: Store, raw: redis.Redis) -> None:
    results = store.enqueue_many([JobSpec(id="twice", command="echo 1"),
                                  JobSpec(id="twice", command="echo 2")])
    assert [(r.state, r.error) for r in results] == [
        (JobState.PENDING, None), (None, "job twice already exists and is pending")]
    assert raw.hget(store.keys.job("twice"), "command") == "echo 1"
    assert raw.lrange(store.keys.queue("default"), 0, -1) == ["twice"]


def test_replace_in_a_chunk_clears_the_old_job_everywhere(
        store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    done = lease(store, JobSpec(id="done", command="true", queue="old"))
    store.complete(done, "w1", b"output", 6)
    dead = lease(store, JobSpec(id="dead", command="false", max_retries=0))
    store.fail(dead, "w1", b"", 0, 1, "exit code 1")
    store.enqueue(JobSpec(id="busy", command="true"))
    results = store.enqueue_many(
        [JobSpec(id="done", command="echo new"), JobSpec(id="dead", command="echo new"),
         JobSpec(id="busy", command="echo new"), JobSpec(id="fresh", command="true")],
        replace=True)
    assert [r.state for r in results] == [JobState.PENDING, JobState.PENDING, None,
                                          JobState.PENDING]
    assert results[2].error == "job busy already exists and is pending"
    assert raw.zscore(k.completed, "done") is None
    assert raw.zscore(k.index("old", "completed"), "done") is None
    assert raw.lrange(k.dead_letter, 0, -1) == []
    assert raw.zcard(k.index("default", "dead")) == 0
    assert raw.exists(k.log("done")) == 0
    assert raw.hget(k.job("done"), "queue") == "default"
    assert raw.hget(k.job("done"), "attempts") == "0"
    assert raw.lrange(k.queue("default"), 0, -1) == ["busy", "done", "dead", "fresh"]
    again = store.enqueue_many([JobSpec(id="done", command="x")], replace=True)
    assert again[0].error == "job done already exists and is pending"


def test_a_resent_chunk_is_answered_as_it_was_first(
        store: Store, raw: redis.Redis, lua: Callable[[str], Script]) -> None:
    specs = [JobSpec(id="r1", command="true"),
             JobSpec(id="r2", command="true", run_at=IN_A_DAY)]
    keys, args = store._batch_call([row_of(s) for s in specs], None, [JobSpan(), JobSpan()],
                                   False)
    batch = lua("enqueue_batch")
    first = batch(keys, args)
    assert first[1:] == [b"01", []]
    assert batch(keys, args)[1:] == [b"01", []], "the same call again is not a conflict"
    assert raw.lrange(store.keys.queue("default"), 0, -1) == ["r1"]
    args[2] = "another-token"
    assert batch(keys, args)[1:] == [b"--", [1, -1, b"pending", 2, -1, b"scheduled"]]


def test_the_scheduler_is_woken_only_for_a_new_earliest_job(
        store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="soon", command="true", run_at=IN_A_DAY - timedelta(hours=1)))
    raw.delete(k.scheduler_wake)
    store.enqueue_many([JobSpec(id="late", command="true", run_at=IN_A_DAY)])
    assert raw.llen(k.scheduler_wake) == 0
    store.enqueue_many([JobSpec(id="a", command="true"),
                        JobSpec(id="sooner", command="true", run_at=IN_A_DAY - timedelta(hours=2))])
    assert raw.llen(k.scheduler_wake) == 1


def test_a_delay_counts_from_redis_clock(store: Store, raw: redis.Redis) -> None:
    """The script adds the delay to the TIME it reads: run_at - created_at is the delay
    to the microsecond, which no client clock could give."""
    stored = store.enqueue_stored(JobSpec(id="d", command="true"), delay=90.25)
    assert stored.state is JobState.SCHEDULED
    created, run_at = (float(str(v)) for v in raw.hmget(store.keys.job("d"), "created_at",
                                                         "run_at"))
    assert run_at - created == pytest.approx(90.25, abs=1e-6)
    assert (stored.created_at, stored.run_at) == (created, run_at)
    assert raw.zscore(store.keys.delayed, "d") == pytest.approx(run_at, abs=1e-6)
    now = store.enqueue_stored(JobSpec(id="d0", command="true"), delay=0)
    assert now.state is JobState.PENDING


def test_a_row_is_the_stored_form_of_its_job() -> None:
    for spec in specs_of_every_kind("r-"):
        assert spec_of(row_of(spec)) == spec
