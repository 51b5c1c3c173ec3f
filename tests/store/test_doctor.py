"""doctor: the invariant check, and --repair, against planted inconsistencies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from queuectl.core import doctor
from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Lease = Callable[..., Fetched]

# run_at may be at most ten years ahead (JobSpec); a year ahead is "later" for any test.
IN_A_YEAR = datetime.now(UTC) + timedelta(days=365)


def check(store: Store, *, fix: bool = False) -> doctor.Report:
    return doctor.run(store, fix=fix)


def busy_world(store: Store, lease: Lease) -> None:
    """One job in every place a job can be."""
    store.enqueue(JobSpec.model_validate({"id": "sched", "command": "true",
                                          "run_at": IN_A_YEAR}))
    store.complete(lease(store, JobSpec(id="done", command="true")), "w1", b"out", 3)
    store.fail(lease(store, JobSpec(id="retry", command="false", max_retries=3)), "w1", b"",
               0, 1, "exit code 1")
    store.fail(lease(store, JobSpec(id="dead", command="false", max_retries=0)), "w1", b"",
               0, 1, "exit code 1")
    store.enqueue(JobSpec(id="gone", command="true"))
    store.cancel("gone")
    lease(store, JobSpec(id="run", command="sleep 9"))
    store.enqueue(JobSpec(id="pend", command="true"))
    k = store.keys
    store.heartbeat(k.worker("w1"), k.workers, "w1", 30, "t", {})


def test_a_consistent_store_is_healthy(store: Store, lease: Lease) -> None:
    busy_world(store, lease)
    report = check(store)
    assert report.problems == [] and report.healthy
    assert report.jobs == 7


def test_an_empty_store_is_healthy(store: Store) -> None:
    report = check(store)
    assert report.healthy and report.jobs == 0


def test_stranded_jobs_are_found_and_put_back(store: Store, lease: Lease,
                                              raw: redis.Redis) -> None:
    busy_world(store, lease)
    k = store.keys
    raw.delete(k.queue("default"))      # "pend" is pending in no queue
    raw.zrem(k.retry_queue, "retry")    # "retry" is failed in no retry set
    raw.lrem(k.dead_letter, 0, "dead")  # "dead" is dead outside the DLQ
    raw.zrem(k.delayed, "sched")
    report = check(store)
    assert sorted(report.problems) == [
        "job dead: dead, but not in dead",
        "job pend: pending, but not in queue:default",
        "job retry: failed, but not in retry",
        "job sched: scheduled, but not in delayed",
    ]
    assert not report.healthy
    repaired = check(store, fix=True)
    assert sorted(repaired.repaired) == sorted(repaired.problems) and repaired.healthy
    assert raw.lrange(k.queue("default"), 0, -1) == ["pend"]
    assert raw.zscore(k.retry_queue, "retry") == float(str(raw.hget(k.job("retry"), "run_at")))
    assert raw.lrange(k.dead_letter, 0, -1) == ["dead"]
    assert check(store).healthy


def test_an_id_in_two_places_keeps_the_one_its_state_names(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="twice", command="true"))
    raw.rpush(k.dead_letter, "twice")
    raw.rpush(k.queue("default"), "twice")
    report = check(store, fix=True)
    assert sorted(report.problems) == ["job twice: also in dead",
                                       "job twice: in queue:default 2 times"]
    assert raw.lrange(k.queue("default"), 0, -1) == ["twice"]
    assert raw.llen(k.dead_letter) == 0


def test_ids_without_a_record_are_dropped(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    raw.rpush(k.queue("reports"), "ghost")
    raw.zadd(k.retry_queue, {"ghost2": 1})
    raw.zadd(k.index("reports", "completed"), {"gone": 1})
    report = check(store, fix=True)
    assert sorted(report.problems) == [
        "job ghost2: also in retry but it has no record",
        "job ghost: also in queue:reports but it has no record",
        "job gone: also in index:reports:completed but it has no record"]
    assert report.healthy
    assert raw.exists(k.queue("reports"), k.retry_queue, k.index("reports", "completed")) == 0


def test_a_job_held_by_an_unregistered_worker_is_handed_back(store: Store, lease: Lease,
                                                             raw: redis.Redis) -> None:
    k = store.keys
    lease(store, JobSpec(id="orphan", command="true"), worker="vanished")
    report = check(store, fix=True)
    assert report.problems == [
        "job orphan: processing on worker vanished, which is not registered"]
    assert raw.lrange(k.queue("default"), 0, -1) == ["orphan"]
    assert raw.exists(k.inflight("vanished")) == 0
    job = raw.hgetall(k.job("orphan"))
    assert (job["state"], job["lost"], job["interrupted"]) == ("pending", "1", "1")


def test_a_processing_job_its_worker_does_not_hold_is_handed_back(store: Store, lease: Lease,
                                                                  raw: redis.Redis) -> None:
    k = store.keys
    lease(store, JobSpec(id="lost", command="true"))
    store.heartbeat(k.worker("w1"), k.workers, "w1", 30, "t", {})
    raw.srem(k.inflight("w1"), "lost")
    report = check(store, fix=True)
    assert report.problems == ["job lost: processing, but not in the in-flight set of w1"]
    assert raw.lrange(k.queue("default"), 0, -1) == ["lost"]


def test_a_record_that_cannot_be_read_goes_to_quarantine(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="bad", command="true"))
    raw.hset(k.job("bad"), "attempts", "abc")
    report = check(store, fix=True)
    assert report.problems == [
        "job bad: its record cannot be read: field attempts is not a number",
        "job bad: also in queue:default"]
    assert not report.healthy  # repaired, but a job in quarantine needs someone
    assert report.quarantined == 1
    assert raw.llen(k.queue("default")) == 0
    assert raw.zscore(k.quarantine, "bad") is not None


def test_wrong_types_markers_are_deleted_data_keys_only_reported(store: Store,
                                                                 raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.wake("default"), "x")
    raw.set(k.retry_queue, "x")
    report = check(store, fix=True)
    assert sorted(report.problems) == sorted([
        f"key {k.wake('default')} is a string, not a list (a wake-up marker; "
        "deleting it is safe)",
        f"key {k.retry_queue} is a string, not a zset: jobs that need it go to quarantine "
        "until it is fixed (inspect it, then DEL or RENAME it)",
    ])
    assert report.repaired == [report.problems[0]] or report.repaired == [report.problems[1]]
    assert raw.exists(k.wake("default")) == 0
    assert raw.get(k.retry_queue) == "x"
    assert not report.healthy


def test_invalid_config_is_reported(store: Store, raw: redis.Redis) -> None:
    raw.hset(store.keys.config, "backoff-base", "abc")
    report = check(store)
    assert report.problems == ["config backoff-base: 'abc' is not a number of seconds or a "
                               "duration (e.g. 500ms, 90s, 5m, 1h30m, 7d); using the default 2 "
                               "(queuectl config set backoff-base VALUE)"]
