"""enqueue.lua: pending and scheduled jobs, duplicate ids, replacing ended jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from queuectl.core.errors import ConflictError
from queuectl.core.models import JobSpec, JobState
from queuectl.core.scripting import PIPELINE_CHUNK
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def test_pending_job_record_queue_and_wake_marker(store: Store, raw: redis.Redis,
                                                  now: Now) -> None:
    k = store.keys
    before = now()
    state = store.enqueue(JobSpec(id="j1", command="echo hi", max_retries=2, timeout=30),
                          trace_context="00-abc-01")
    assert state is JobState.PENDING
    assert raw.lrange(k.queue("default"), 0, -1) == ["j1"]
    assert k.queue("default") == f"{k.prefix}:jobs"
    record = raw.hgetall(k.job("j1"))
    assert record["id"] == "j1"
    assert record["command"] == "echo hi"
    assert record["queue"] == "default"
    assert record["state"] == "pending"
    assert record["attempts"] == "0"
    assert record["max_retries"] == "2"
    assert float(record["timeout"]) == 30
    assert record["lease"] == "0"
    assert record["log_size"] == "0"
    assert record["trace_context"] == "00-abc-01"
    assert before <= float(record["created_at"]) <= now()
    assert record["updated_at"] == record["created_at"]
    assert raw.lrange(k.wake("default"), 0, -1) == ["1"]
    assert raw.smembers(k.queues) == {"default"}
    assert raw.zcard(k.delayed) == 0


def test_policy_fields_left_empty_mean_policy_default(store: Store, raw: redis.Redis) -> None:
    store.enqueue(JobSpec(id="j1", command="true"))
    record = raw.hgetall(store.keys.job("j1"))
    assert record["max_retries"] == ""
    assert record["timeout"] == ""


def test_named_queue_and_one_wake_marker_for_many_jobs(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    for i in range(3):
        store.enqueue(JobSpec(id=f"j{i}", command="true", queue="mail"))
    assert raw.lrange(k.queue("mail"), 0, -1) == ["j0", "j1", "j2"]
    assert raw.llen(k.queue("default")) == 0
    # One marker is enough: a woken worker re-arms it while work remains.
    assert raw.llen(k.wake("mail")) == 1
    assert raw.smembers(k.queues) == {"mail"}


def test_future_run_at_is_scheduled_in_the_delayed_set(store: Store, raw: redis.Redis,
                                                       now: Now) -> None:
    k = store.keys
    due = now() + 100
    assert store.enqueue(JobSpec(id="later", command="true", run_at=at(due))) \
        is JobState.SCHEDULED
    assert raw.hget(k.job("later"), "state") == "scheduled"
    assert raw.zscore(k.delayed, "later") == pytest.approx(due, abs=1e-3)
    assert float(raw.hget(k.job("later"), "run_at") or 0) == pytest.approx(due, abs=1e-3)
    assert raw.llen(k.queue("default")) == 0
    assert raw.llen(k.wake("default")) == 0


def test_past_run_at_is_pending_at_once(store: Store, raw: redis.Redis, now: Now) -> None:
    k = store.keys
    assert store.enqueue(JobSpec(id="past", command="true", run_at=at(now() - 5))) \
        is JobState.PENDING
    assert raw.lrange(k.queue("default"), 0, -1) == ["past"]
    assert raw.zcard(k.delayed) == 0


def test_scheduler_is_woken_only_by_a_new_earliest_job(store: Store, raw: redis.Redis,
                                                       now: Now) -> None:
    k = store.keys
    t = now()
    store.enqueue(JobSpec(id="first", command="true", run_at=at(t + 100)))
    assert raw.lpop(k.scheduler_wake) == "1"  # a sleeping scheduler takes the marker
    store.enqueue(JobSpec(id="later", command="true", run_at=at(t + 200)))
    assert raw.llen(k.scheduler_wake) == 0  # not earlier: the scheduler's sleep is right
    store.enqueue(JobSpec(id="sooner", command="true", run_at=at(t + 50)))
    assert raw.lrange(k.scheduler_wake, 0, -1) == ["1"]
    store.enqueue(JobSpec(id="soonest", command="true", run_at=at(t + 10)))
    assert raw.llen(k.scheduler_wake) == 1  # armed already: never more than one marker


@pytest.mark.parametrize("active", ["pending", "scheduled", "processing", "failed"])
def test_duplicate_id_refused_while_active_even_with_replace(
    active: str, store: Store, raw: redis.Redis, now: Now, lease: Lease,
) -> None:
    k = store.keys
    original = JobSpec(id="dup", command="echo original", max_retries=5)
    if active == "scheduled":
        store.enqueue(original.model_copy(update={"run_at": at(now() + 100)}))
    elif active == "pending":
        store.enqueue(original)
    else:
        job = lease(store, original)
        if active == "failed":
            store.fail(job, "w1", b"", 0, 1, "exit 1")
    assert raw.hget(k.job("dup"), "state") == active
    before = raw.hgetall(k.job("dup"))
    for replace in (False, True):
        with pytest.raises(ConflictError, match=f"already exists and is {active}"):
            store.enqueue(JobSpec(id="dup", command="echo new"), replace=replace)
    assert raw.hgetall(k.job("dup")) == before
    assert raw.llen(k.queue("default")) == (1 if active == "pending" else 0)


def test_ended_job_needs_replace(store: Store, raw: redis.Redis, lease: Lease) -> None:
    job = lease(store, JobSpec(id="done", command="true"))
    store.complete(job, "w1", b"", 0)
    with pytest.raises(ConflictError, match=r"already exists \(completed\); use --replace"):
        store.enqueue(JobSpec(id="done", command="echo new"))
    assert raw.hget(store.keys.job("done"), "command") == "true"


def test_replace_ended_job_starts_a_fresh_record(store: Store, raw: redis.Redis,
                                                 lease: Lease) -> None:
    k = store.keys
    job = lease(store, JobSpec(id="r", command="echo old", queue="old"))
    store.complete(job, "w1", b"old output", 10)
    assert raw.zscore(k.completed, "r") is not None
    assert raw.zscore(k.index("old", "completed"), "r") is not None
    assert store.enqueue(JobSpec(id="r", command="echo new"), replace=True) is JobState.PENDING
    record = raw.hgetall(k.job("r"))
    assert record["command"] == "echo new"
    assert record["state"] == "pending"
    assert record["attempts"] == "0"
    assert record["lease"] == "0"
    assert record["log_size"] == "0"
    for gone in ("exit_code", "finished_at", "started_at", "worker"):
        assert gone not in record
    assert raw.exists(k.log("r")) == 0
    assert raw.zscore(k.completed, "r") is None
    assert raw.exists(k.index("old", "completed")) == 0  # the old queue's index, too
    assert raw.lrange(k.queue("default"), 0, -1) == ["r"]


def test_replace_dead_job_clears_its_dlq_entry_and_log(make_store: Callable[..., Store],
                                                       raw: redis.Redis,
                                                       lease: Lease) -> None:
    store = make_store(max_retries=0)
    k = store.keys
    job = lease(store, JobSpec(id="d", command="false"))
    assert store.fail(job, "w1", b"boom", 4, 1, "exit code 1").dead
    assert raw.lrange(k.dead_letter, 0, -1) == ["d"]
    assert raw.get(k.log("d")) == "boom"
    store.enqueue(JobSpec(id="d", command="true", queue="other"), replace=True)
    assert raw.llen(k.dead_letter) == 0
    assert raw.exists(k.log("d")) == 0
    assert raw.hget(k.job("d"), "queue") == "other"
    assert raw.lrange(k.queue("other"), 0, -1) == ["d"]


def test_replace_cancelled_job(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="c", command="true"))
    store.cancel("c")
    assert raw.zscore(k.cancelled, "c") is not None
    store.enqueue(JobSpec(id="c", command="true"), replace=True)
    assert raw.zscore(k.cancelled, "c") is None
    assert raw.hget(k.job("c"), "state") == "pending"


def test_enqueue_many_spans_pipeline_chunks_and_reports_each_result(
    store: Store, raw: redis.Redis,
) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="taken", command="true"))
    n = PIPELINE_CHUNK + 7
    specs = [JobSpec(id=f"m{i}", command="true") for i in range(n)]
    specs.insert(500, JobSpec(id="taken", command="echo again"))
    results = store.enqueue_many(specs)
    assert [r.id for r in results] == [s.id for s in specs]
    assert results[500].state is None
    assert results[500].error == "job taken already exists and is pending"
    assert all(r.state is JobState.PENDING for i, r in enumerate(results) if i != 500)
    queued = raw.lrange(k.queue("default"), 0, -1)
    assert queued == ["taken"] + [f"m{i}" for i in range(n)]



@pytest.mark.parametrize(("rule", "key"), [
    ("-hset", "jobs:new"), ("-sadd", "queues"), ("-rpush", "queue:q")])
def test_an_acl_that_denies_a_write_of_a_new_job_stops_it_before_any_write(
        store: Store, refused_with_nothing_written: Callable[..., None], rule: str,
        key: str) -> None:
    """The writes a call will make are checked before the first of them."""
    p = store.keys.prefix
    store.enqueue(JobSpec(id="there", command="true", queue="q"))  # every key exists
    refused_with_nothing_written(
        [f"~{p}:*", rule], f"{rule[1:].upper()} on {p}:{key}",
        lambda limited: limited.enqueue(JobSpec(id="new", command="true", queue="q")))
