"""fetch.lua: priority across queues, FIFO, the lease, in-flight set, wake markers, timeouts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
MakeDue = Callable[[Store, str], None]


def test_empty_queues_give_none_and_write_nothing(store: Store, raw: redis.Redis) -> None:
    assert store.fetch("w1", ["default", "other"]) is None
    assert raw.keys(f"{store.keys.prefix}:*") == []


def test_fetch_leases_the_job(store: Store, raw: redis.Redis, now: Now) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="j1", command="echo hi", queue="q"), trace_context="tc-1")
    before = now()
    job = store.fetch("w1", ["q"])
    assert job is not None
    record = raw.hgetall(k.job("j1"))
    assert job == Fetched(id="j1", lease=1, command="echo hi", timeout=3600.0, attempts=1,
                          queue="q", trace_context="tc-1",
                          ready_at=float(record["created_at"]), fetched_at=job.fetched_at)
    # Ready since enqueue; the fetch's own time is the record's started_at.
    assert job.fetched_at == float(record["started_at"])
    assert job.wait is not None and 0 <= job.wait < 60
    assert record["state"] == "processing"
    assert record["worker"] == "w1"
    assert record["attempts"] == "1"
    assert record["lease"] == "1"
    assert before <= float(record["started_at"]) <= now()
    assert record["updated_at"] == record["started_at"]
    assert raw.smembers(k.inflight("w1")) == {"j1"}
    assert raw.llen(k.queue("q")) == 0


def test_strict_priority_across_queues_then_fifo(store: Store) -> None:
    for job_id, queue in [("low1", "low"), ("mid1", "mid"), ("low2", "low"), ("high1", "high"),
                          ("mid2", "mid"), ("high2", "high")]:
        store.enqueue(JobSpec(id=job_id, command="true", queue=queue))
    order = []
    while (job := store.fetch("w1", ["high", "mid", "low"])) is not None:
        order.append(job.id)
    assert order == ["high1", "high2", "mid1", "mid2", "low1", "low2"]


def test_only_the_given_queues_are_read(store: Store, raw: redis.Redis) -> None:
    store.enqueue(JobSpec(id="elsewhere", command="true", queue="other"))
    assert store.fetch("w1", ["default"]) is None
    assert raw.lrange(store.keys.queue("other"), 0, -1) == ["elsewhere"]


def test_lease_and_attempts_grow_with_every_fetch(store: Store, raw: redis.Redis,
                                                  make_due: MakeDue) -> None:
    store.enqueue(JobSpec(id="r", command="false"))
    leases = []
    for attempt in (1, 2, 3):
        job = store.fetch("w1", ["default"])
        assert job is not None
        assert job.attempts == attempt
        leases.append(job.lease)
        store.fail(job, "w1", b"", 0, 1, "exit code 1")
        make_due(store, "r")
    assert leases == [1, 2, 3]
    assert raw.hget(store.keys.job("r"), "attempts") == "3"


def test_each_worker_gets_its_own_in_flight_set(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    a, b = store.fetch("w1", ["default"]), store.fetch("w2", ["default"])
    assert a is not None and b is not None
    assert raw.smembers(k.inflight("w1")) == {"a"}
    assert raw.smembers(k.inflight("w2")) == {"b"}
    store.complete(a, "w1", b"", 0)
    assert raw.smembers(k.inflight("w1")) == set()


def test_wake_marker_is_re_armed_while_work_remains(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="a", command="true"))
    store.enqueue(JobSpec(id="b", command="true"))
    assert raw.lpop(k.wake("default")) == "1"  # the woken worker consumed the marker
    assert store.fetch("w1", ["default"]) is not None
    # "b" is still queued: another idle worker must be woken for it.
    assert raw.lrange(k.wake("default"), 0, -1) == ["1"]
    assert raw.lpop(k.wake("default")) == "1"
    assert store.fetch("w2", ["default"]) is not None
    assert raw.llen(k.wake("default")) == 0  # nothing left, nobody to wake


def test_wake_markers_of_every_non_empty_queue_are_armed(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    for job_id, queue in [("h", "high"), ("l", "low"), ("l2", "low")]:
        store.enqueue(JobSpec(id=job_id, command="true", queue=queue))
    raw.delete(k.wake("high"), k.wake("low"))
    job = store.fetch("w1", ["high", "low", "empty"])
    assert job is not None and job.id == "h"
    assert raw.llen(k.wake("high")) == 0
    assert raw.lrange(k.wake("low"), 0, -1) == ["1"]
    assert raw.llen(k.wake("empty")) == 0
    store.fetch("w1", ["high", "low", "empty"])
    assert raw.lrange(k.wake("low"), 0, -1) == ["1"]  # armed once, never duplicated


def test_ids_whose_record_vanished_or_is_not_pending_are_dropped(store: Store,
                                                                 raw: redis.Redis) -> None:
    k = store.keys
    raw.rpush(k.queue("default"), "ghost")  # record purged or expired
    store.enqueue(JobSpec(id="stale", command="true"))
    raw.hset(k.job("stale"), "state", "cancelled")  # must never be run
    store.enqueue(JobSpec(id="real", command="true"))
    job = store.fetch("w1", ["default"])
    assert job is not None and job.id == "real"
    assert raw.llen(k.queue("default")) == 0
    assert raw.exists(k.job("ghost")) == 0
    assert raw.hget(k.job("stale"), "state") == "cancelled"
    assert raw.smembers(k.inflight("w1")) == {"real"}


def test_queue_of_only_vanished_ids_falls_through_to_the_next(store: Store,
                                                              raw: redis.Redis) -> None:
    k = store.keys
    raw.rpush(k.queue("high"), "gone1", "gone2")
    store.enqueue(JobSpec(id="low", command="true", queue="low"))
    job = store.fetch("w1", ["high", "low"])
    assert job is not None and job.id == "low"
    assert raw.llen(k.queue("high")) == 0


def test_timeout_resolution(make_store: Callable[..., Store], raw: redis.Redis) -> None:
    store = make_store(job_timeout=11.0)
    k = store.keys
    store.enqueue(JobSpec(id="own", command="true", timeout=5))
    store.enqueue(JobSpec(id="default", command="true"))
    own, default = store.fetch("w1", ["default"]), store.fetch("w1", ["default"])
    assert own is not None and own.timeout == 5.0  # the job's own timeout wins
    assert default is not None and default.timeout == 11.0  # else the policy default

    raw.hset(k.config, "job-timeout", "7")
    store.enqueue(JobSpec(id="own2", command="true", timeout=5))
    store.enqueue(JobSpec(id="config", command="true"))
    own2, config = store.fetch("w1", ["default"]), store.fetch("w1", ["default"])
    assert own2 is not None and own2.timeout == 5.0  # still beats config
    assert config is not None and config.timeout == 7.0  # config beats the default

    raw.hset(k.config, "job-timeout", "0")
    store.enqueue(JobSpec(id="none", command="true"))
    none = store.fetch("w1", ["default"])
    assert none is not None and none.timeout is None  # 0 = no timeout


@pytest.mark.parametrize("timeout", [0.5, 1e-3])
def test_fractional_timeouts_survive(store: Store, timeout: float) -> None:
    store.enqueue(JobSpec(id="f", command="true", timeout=timeout))
    job = store.fetch("w1", ["default"])
    assert job is not None and job.timeout == timeout


def alive(raw: redis.Redis, store: Store, worker: str = "w1") -> None:
    """What the worker's heartbeat keeps while it lives: its status hash."""
    raw.hset(store.keys.worker(worker), "last_beat", "1")


def test_a_waiting_fetch_leases_the_job_that_wakes_it(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    alive(raw, store)
    got: list[Fetched | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(store.wait_fetch("w1", ["q"], timeout=10, tag="7")))
    waiter.start()
    while not any(c.get("cmd") == "blpop" for c in raw.client_list()):
        time.sleep(0.01)
    assert raw.scard(k.inflight("w1")) == 0, "nothing is leased while it waits"
    store.enqueue(JobSpec(id="j1", command="true", queue="q"))
    waiter.join(5)
    assert got and got[0] is not None and got[0].id == "j1"
    assert raw.hget(k.job("j1"), "fetch_tag") == "7"
    assert raw.smembers(k.inflight("w1")) == {"j1"}
    assert raw.llen(k.wake("q")) == 0, "the marker was taken, and no work remains"


def test_a_waiting_fetch_of_a_stopping_worker_takes_nothing(store: Store,
                                                            raw: redis.Redis) -> None:
    """The worker's wakeup list holds one marker more than it has slots while it stops:
    the fetch behind the last slot's wait still finds one."""
    k = store.keys
    alive(raw, store)
    store.enqueue(JobSpec(id="j1", command="true", queue="q"))
    raw.rpush(k.wakeup("w1"), "1", "1")
    assert store.wait_fetch("w1", ["q"], timeout=10) is None
    assert store.fetch("w1", ["q"]) is None, "a plain fetch takes nothing either"
    assert raw.hget(k.job("j1"), "state") == "pending"
    assert raw.lrange(k.queue("q"), 0, -1) == ["j1"]
    assert raw.llen(k.wake("q")) == 1, "the wake marker is back for other workers"
    raw.delete(k.wakeup("w1"))
    assert store.wait_fetch("w1", ["q"], timeout=10) is not None


def test_a_waiting_fetch_of_a_worker_counted_dead_takes_nothing(store: Store,
                                                              raw: redis.Redis) -> None:
    """The fetch behind a wait runs whenever the wait ends, perhaps after the worker was
    frozen past its TTL and reaped: then its in-flight set is read by no reaper again, so
    without its status hash (the reaper's sign of life) it takes no job. A worker's plain
    fetch asks the same; a call that does not ask (alive=False) is not held to it."""
    k = store.keys
    store.enqueue(JobSpec(id="j1", command="true", queue="q"))
    assert store.wait_fetch("w1", ["q"], timeout=10) is None
    assert store.fetch("w1", ["q"], alive=True) is None
    assert raw.hget(k.job("j1"), "state") == "pending"
    assert raw.scard(k.inflight("w1")) == 0
    # The marker is not put back: the worker would take it straight back and spin until
    # its heartbeat is back; another worker finds the job at its next wake.
    assert raw.llen(k.wake("q")) == 0
    alive(raw, store)
    assert store.fetch("w1", ["q"], alive=True) is not None


def test_a_wake_list_of_the_wrong_type_never_costs_a_leased_job(store: Store,
                                                              raw: redis.Redis) -> None:
    """BLPOP fails at once and the fetch behind it still runs: its job is returned."""
    k = store.keys
    alive(raw, store)
    store.enqueue(JobSpec(id="j1", command="true", queue="q"))
    raw.delete(k.wake("q"))
    raw.set(k.wake("q"), "planted")
    job = store.wait_fetch("w1", ["q"], timeout=10)
    assert job is not None and job.id == "j1"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        store.wait_fetch("w1", ["q"], timeout=10)


def test_a_waiting_fetch_runs_again_after_a_script_flush(store: Store, raw: redis.Redis) -> None:
    alive(raw, store)
    store.enqueue(JobSpec(id="j1", command="true", queue="q"))
    raw.script_flush()
    job = store.wait_fetch("w1", ["q"], timeout=10)
    assert job is not None and job.id == "j1"
