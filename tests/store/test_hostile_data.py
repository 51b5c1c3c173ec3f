"""The findings of "safe to run unattended", section 1, one test each: garbage another
client wrote into Redis affects that job or key only, and no script half-applies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from queuectl.core.errors import DataError
from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Quarantined, Store

Lease = Callable[..., Fetched]

# run_at may be at most ten years ahead (JobSpec); a year ahead is "later" for any test.
IN_A_YEAR = datetime.now(UTC) + timedelta(days=365)


def keys_of(raw: redis.Redis, store: Store) -> dict[str, str]:
    return {str(k): str(raw.type(k)) for k in raw.scan_iter(match=f"{store.keys.prefix}:*")}


@pytest.mark.parametrize("name", ["backoff-base", "max-retries", "backoff-factor"])
def test_a_policy_value_that_does_not_parse_falls_back_to_its_default(
        store: Store, lease: Lease, raw: redis.Redis, name: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # Was: fail.lua raised after SREM; the worker retried the report forever and the
    # job was left processing with no owner.
    raw.hset(store.keys.config, name, "abc")
    job = lease(store, JobSpec(id="f", command="false"))
    outcome = store.fail(job, "w1", b"", 0, 1, "exit code 1")
    assert not outcome.dead and outcome.retry_at is not None
    record = raw.hgetall(store.keys.job("f"))
    # The default policy (3 retries, base 2): the first retry waits 2 s.
    assert record["state"] == "failed"
    assert float(record["run_at"]) - float(record["finished_at"]) == pytest.approx(2.0, abs=0.01)
    assert raw.sismember(store.keys.inflight("w1"), "f") == 0
    assert f"config {name}: 'abc' is not a" in caplog.text and "using the default" in caplog.text


def test_a_job_timeout_that_does_not_parse_gives_the_default(store: Store,
                                                             raw: redis.Redis) -> None:
    # Was: store.fetch raised ValueError in every job thread and the worker exited 0.
    raw.hset(store.keys.config, "job-timeout", "abc")
    store.enqueue(JobSpec(id="t", command="true"))
    got = store.fetch("w1", ["default"])
    assert got is not None and got.timeout == 3600.0


def test_max_lost_that_does_not_parse_gives_the_default(store: Store, lease: Lease,
                                                        raw: redis.Redis) -> None:
    # Was: reap.lua raised after removing ids; the jobs stayed processing forever.
    raw.hset(store.keys.config, "max-lost", "abc")
    lease(store, JobSpec(id="r", command="true"), worker="gone")
    raw.zadd(store.keys.workers, {"gone": 0})
    result = store.reap_worker("gone", 1.0)
    assert result is not None and result.requeued == 1
    assert raw.lrange(store.keys.queue("default"), 0, -1) == ["r"]


def test_a_retry_set_of_the_wrong_type_quarantines_the_failing_job_only(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    # Was: the job ended up failed in no retry set, never to retry.
    k = store.keys
    raw.set(k.retry_queue, "x")
    failing = lease(store, JobSpec(id="f", command="false"))
    with pytest.raises(Quarantined, match="not a zset"):
        store.fail(failing, "w1", b"", 0, 1, "exit code 1")
    assert raw.sismember(k.inflight("w1"), "f") == 0
    assert raw.zscore(k.quarantine, "f") is not None
    assert "failed (exit code 1), but key" in str(raw.hget(k.quarantine_why, "f"))
    # Everything that does not need the retry set keeps flowing.
    store.complete(lease(store, JobSpec(id="ok", command="true")), "w1", b"", 0)
    assert raw.hget(k.job("ok"), "state") == "completed"


def test_a_queue_of_the_wrong_type_starves_nothing_else(store: Store, raw: redis.Redis) -> None:
    # Was: fetch aborted on the first queue, so every other queue starved; enqueue exited 6
    # yet left a pending record in no queue whose id could never be enqueued again.
    k = store.keys
    raw.set(k.queue("default"), "x")
    store.enqueue(JobSpec(id="other", command="true", queue="low"))
    got = store.fetch("w1", ["default", "low"])
    assert got is not None and got.id == "other"
    before = keys_of(raw, store)
    with pytest.raises(DataError, match=r"jobs is a string, not a list"):
        store.enqueue(JobSpec(id="stuck", command="true"))
    assert keys_of(raw, store) == before and raw.exists(k.job("stuck")) == 0
    raw.delete(k.queue("default"))
    store.enqueue(JobSpec(id="stuck", command="true"))  # the id was never taken


def test_a_record_with_garbage_is_quarantined_by_fetch_not_lost(store: Store,
                                                                raw: redis.Redis) -> None:
    # Was: fetch popped the id, then raised: the job was gone from its queue.
    k = store.keys
    store.enqueue(JobSpec(id="bad", command="true"))
    store.enqueue(JobSpec(id="good", command="true"))
    raw.hset(k.job("bad"), "attempts", "abc")
    got = store.fetch("w1", ["default"])
    assert got is not None and got.id == "good"
    assert raw.zscore(k.quarantine, "bad") is not None
    assert "field attempts is not a number" in str(raw.hget(k.quarantine_why, "bad"))
    assert raw.hget(k.job("bad"), "attempts") == "abc"  # left as found, for inspection


def test_a_due_id_whose_record_is_a_string_does_not_stop_promotion(store: Store,
                                                                   raw: redis.Redis) -> None:
    # Was: every scheduler round failed; nothing was promoted until someone deleted the key.
    k = store.keys
    raw.zadd(k.retry_queue, {"wt": 0})
    raw.set(k.job("wt"), "x")
    store.enqueue(JobSpec.model_validate({"id": "due", "command": "true",
                                          "run_at": IN_A_YEAR}))
    raw.zadd(k.delayed, {"due": 0})
    result = store.promote_due(100)
    assert result.moved == 1
    assert raw.lrange(k.queue("default"), 0, -1) == ["due"]
    assert raw.zscore(k.quarantine, "wt") is not None
    assert raw.zcard(k.retry_queue) == 0


def test_a_completed_job_whose_index_is_unusable_is_quarantined_with_its_outcome(
        store: Store, lease: Lease, raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.completed, "x")
    with pytest.raises(Quarantined):
        store.complete(lease(store, JobSpec(id="c", command="true")), "w1", b"", 0)
    assert str(raw.hget(k.quarantine_why, "c")).startswith('{"')
    assert "exited 0, but key" in str(raw.hget(k.quarantine_why, "c"))


def test_quarantined_jobs_come_back_once_the_cause_is_fixed(store: Store, lease: Lease,
                                                            raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.retry_queue, "x")
    with pytest.raises(Quarantined):
        store.fail(lease(store, JobSpec(id="f", command="false")), "w1", b"", 0, 1, "boom")
    raw.set(k.queue("default"), "x")
    assert store.quarantine_retry(["f"]).notes == [
        f"f: key {k.queue('default')} is a string, not a list"]
    raw.delete(k.queue("default"), k.retry_queue)
    assert store.quarantine_retry(["f"]).moved == 1
    record = raw.hgetall(k.job("f"))
    assert (record["state"], record["attempts"]) == ("pending", "0")
    assert raw.lrange(k.queue("default"), 0, -1) == ["f"]
    assert raw.zcard(k.quarantine) == 0 and raw.hlen(k.quarantine_why) == 0


def test_a_completed_ttl_redis_cannot_expire_with_breaks_nothing(store: Store,
                                                                 raw: redis.Redis) -> None:
    # Was: cancel.lua's EXPIRE failed after the state change: cancel exited 6 yet cancelled.
    # The value is out of bounds, so the default applies; retention is the scheduler's.
    raw.hset(store.keys.config, "completed-ttl", "10000000000000000")
    store.enqueue(JobSpec(id="c", command="true"))
    assert store.cancel("c").value == "pending"
    assert raw.hget(store.keys.job("c"), "state") == "cancelled"
    assert store.policy.completed_ttl == 86400
    assert store.prune() == 0  # kept for the default day
