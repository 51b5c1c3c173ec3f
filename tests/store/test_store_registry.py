"""heartbeat.lua and unregister.lua, and the key layout every script shares."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec
from queuectl.core.settings import PolicyDefaults
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]
StoreFactory = Callable[..., Store]


# -- heartbeat ---------------------------------------------------------------------------
def test_heartbeat_writes_status_ttl_and_registry(store: Store, raw: redis.Redis,
                                                  now: Now) -> None:
    k = store.keys
    before = now()
    beat = store.heartbeat(k.worker("w1"), k.workers, "w1", 5.0, "t",
                           {"host": "h", "threads": "4", "queues": "a,b"})
    assert before <= beat <= now()
    status = raw.hgetall(k.worker("w1"))
    assert status == {"last_beat": f"{beat:.6f}", "instance": "t", "host": "h", "threads": "4",
                      "queues": "a,b"}
    assert 4000 < raw.pttl(k.worker("w1")) <= 5000
    assert raw.zscore(k.workers, "w1") == pytest.approx(beat, abs=1e-3)

    again = store.heartbeat(k.worker("w1"), k.workers, "w1", 0.5, "t", {"threads": "3"})
    assert again >= beat
    assert raw.hget(k.worker("w1"), "threads") == "3"
    assert 0 < raw.pttl(k.worker("w1")) <= 500
    assert raw.zscore(k.workers, "w1") == pytest.approx(again, abs=1e-3)


def test_scheduler_heartbeat_uses_its_own_registry(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    store.heartbeat(k.scheduler("s1"), k.schedulers, "s1", 3.0, "t", {"promoted": "0"})
    assert raw.type(k.scheduler("s1")) == "hash"
    assert raw.zrange(k.schedulers, 0, -1) == ["s1"]
    assert raw.zcard(k.workers) == 0


def test_registry_entry_outlives_the_status_hash(store: Store, raw: redis.Redis) -> None:
    # Recovery finds a dead worker through the registry after its status expired.
    k = store.keys
    store.heartbeat(k.worker("w1"), k.workers, "w1", 0.001, "t", {})  # expires after 1 ms
    deadline = time.monotonic() + 5
    while raw.exists(k.worker("w1")) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert raw.exists(k.worker("w1")) == 0
    assert raw.zrange(k.workers, 0, -1) == ["w1"]


# -- unregister --------------------------------------------------------------------------
def test_unregister_refuses_while_jobs_are_held(store: Store, raw: redis.Redis,
                                                lease: Lease) -> None:
    k = store.keys
    store.heartbeat(k.worker("w1"), k.workers, "w1", 10.0, "t", {})
    raw.rpush(k.control("w1"), "stop")
    job = lease(store, JobSpec(id="held", command="true"))
    assert store.unregister_worker("w1", "t") == 1
    assert raw.exists(k.worker("w1"), k.inflight("w1"), k.control("w1")) == 3
    assert raw.zrange(k.workers, 0, -1) == ["w1"]

    store.complete(job, "w1", b"", 0)
    raw.rpush(k.wakeup("w1"), "1")
    assert store.unregister_worker("w1", "t") == 0
    assert raw.exists(k.worker("w1"), k.inflight("w1"), k.control("w1"), k.wakeup("w1")) == 0
    assert raw.zcard(k.workers) == 0


# -- key layout --------------------------------------------------------------------------
def test_the_seed_key_layout(client: Client, make_store: StoreFactory, raw: redis.Redis,
                             lease: Lease, key_prefix: str) -> None:
    store = make_store(max_retries=1)
    p = key_prefix
    store.enqueue(JobSpec(id="pending", command="true"))
    retried = lease(store, JobSpec(id="retried", command="false", queue="other"))
    store.fail(retried, "w1", b"", 0, 1, "exit code 1")
    dead = lease(store, JobSpec(id="dead", command="false", max_retries=0, queue="other"))
    store.fail(dead, "w1", b"", 0, 1, "exit code 1")
    client.config_set("max-retries", "5")
    store.heartbeat(store.keys.worker("w1"), store.keys.workers, "w1", 10.0, "t", {"host": "h"})

    assert raw.type(f"{p}:jobs") == "list"
    assert raw.lrange(f"{p}:jobs", 0, -1) == ["pending"]
    assert raw.type(f"{p}:jobs:pending") == "hash"
    assert raw.hget(f"{p}:jobs:pending", "command") == "true"
    assert raw.type(f"{p}:config") == "hash"
    assert raw.hget(f"{p}:config", "max-retries") == "5"
    assert raw.type(f"{p}:retry_queue") == "zset"
    assert raw.zrange(f"{p}:retry_queue", 0, -1) == ["retried"]
    assert raw.type(f"{p}:dead_letter") == "list"
    assert raw.lrange(f"{p}:dead_letter", 0, -1) == ["dead"]
    assert raw.type(f"{p}:worker:w1") == "hash"
    assert raw.hget(f"{p}:worker:w1", "host") == "h"

    # Whatever else the scripts wrote, every key under P:jobs: is a job record.
    for key in raw.scan_iter(match=f"{p}:*", count=1000):
        if key.startswith(f"{p}:jobs:"):
            assert raw.type(key) == "hash", key
            assert raw.hget(key, "id") == key.removeprefix(f"{p}:jobs:"), key


@pytest.mark.parametrize("name", ["other", "jobs", "default2", "a.b-c_d", "x" * 128])
def test_named_queues_never_collide_with_job_records(name: str, store: Store,
                                                     raw: redis.Redis, key_prefix: str) -> None:
    k = Keys(key_prefix)
    assert not k.queue(name).startswith(f"{key_prefix}:jobs:")
    assert not k.wake(name).startswith(f"{key_prefix}:jobs")
    store.enqueue(JobSpec(id="j", command="true", queue=name))
    assert raw.type(k.queue(name)) == "list"
    assert raw.lrange(k.queue(name), 0, -1) == ["j"]
    assert raw.type(f"{key_prefix}:jobs:j") == "hash"


def test_every_key_helper_stays_out_of_the_job_namespace() -> None:
    k = Keys("P")
    built = [k.config, k.retry_queue, k.dead_letter, k.worker("w"), k.queue("q"), k.wake("q"),
             k.queues, k.delayed, k.completed, k.cancelled, k.scheduler_wake,
             k.scheduler("s"), k.schedulers, k.workers, k.inflight("w"), k.control("w"),
             k.wakeup("w"), k.log("j"), k.stats]
    for key in built:
        assert key.startswith("P:")
        assert not key.startswith("P:jobs:"), key
    assert k.job("j") == "P:jobs:j" and k.job_prefix == "P:jobs:"
    assert k.queue("default") == "P:jobs"


def test_a_hash_tag_prefix_reaches_every_key(client: Client, raw: redis.Redis,
                                             key_prefix: str, lease: Lease) -> None:
    tagged = f"{{{key_prefix}}}"
    store = Store(client.redis, Keys(tagged), PolicyDefaults(max_retries=0))
    job = lease(store, JobSpec(id="t", command="false"))
    store.log_append(job, "w1", b"x", 1)
    store.fail(job, "w1", b"", 0, 1, "exit code 1")
    store.heartbeat(store.keys.worker("w1"), store.keys.workers, "w1", 10.0, "t", {})
    written = list(raw.scan_iter(match=f"{{{key_prefix}}}*", count=1000))
    assert len(written) >= 6
    # In Redis Cluster, only the part between the first { and } is hashed.
    assert {key.split("}", 1)[0] + "}" for key in written} == {tagged}
