"""prune_dead.lua: the DLQ is bounded by dead-ttl and dead-max, oldest first."""

from __future__ import annotations

from collections.abc import Callable

import redis

from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
Lease = Callable[..., Fetched]


def bury(store: Store, lease: Lease, job_id: str, queue: str = "default") -> None:
    """A job that failed with no retries left: dead, with output, in the DLQ."""
    job = lease(store, JobSpec(id=job_id, command="false", queue=queue, max_retries=0))
    store.fail(job, "w1", b"output", 6, 1, "exit code 1")


def test_the_oldest_dead_jobs_beyond_dead_max_go_with_their_output(
        store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    for i in range(5):
        bury(store, lease, f"d{i}", queue="q")
    assert store.prune_dead() == (0, 0)  # the defaults keep 10,000 for 30 days
    raw.hset(k.config, "dead-max", "2")
    assert store.prune_dead() == (3, 0)
    assert raw.lrange(k.dead_letter, 0, -1) == ["d3", "d4"]
    assert raw.zrange(k.index("q", "dead"), 0, -1) == ["d3", "d4"]
    assert raw.exists(*(k.job(f"d{i}") for i in range(3)), *(k.log(f"d{i}") for i in range(3))) == 0
    assert raw.hget(k.job("d3"), "state") == "dead" and raw.get(k.log("d4")) == "output"
    assert store.prune_dead() == (0, 0)


def test_dead_jobs_older_than_dead_ttl_go(store: Store, raw: redis.Redis, lease: Lease,
                                          now: Now) -> None:
    k = store.keys
    for job_id in ("old1", "old2", "young"):
        bury(store, lease, job_id)
    for job_id in ("old1", "old2"):
        raw.hset(k.job(job_id), "updated_at", f"{now() - 1000:.6f}")
    assert store.prune_dead() == (0, 0)
    raw.hset(k.config, "dead-ttl", "100")  # lowered: takes effect at once
    assert store.prune_dead() == (2, 0)
    assert raw.lrange(k.dead_letter, 0, -1) == ["young"]
    assert raw.exists(k.job("old1"), k.job("old2"), k.log("old1")) == 0


def test_zero_keeps_every_dead_job(store: Store, raw: redis.Redis, lease: Lease,
                                   now: Now) -> None:
    k = store.keys
    bury(store, lease, "d")
    raw.hset(k.job("d"), "updated_at", f"{now() - 10**8:.6f}")
    raw.hset(k.config, mapping={"dead-ttl": "0", "dead-max": "0"})
    assert store.prune_dead() == (0, 0)
    assert raw.lrange(k.dead_letter, 0, -1) == ["d"]


def test_stale_entries_are_dropped_and_records_of_live_jobs_kept(
        store: Store, raw: redis.Redis, lease: Lease) -> None:
    k = store.keys
    store.enqueue(JobSpec(id="alive", command="true", queue="other"))
    raw.rpush(k.dead_letter, "ghost", "alive")  # entries a bug or a hand left behind
    bury(store, lease, "d")
    assert store.prune_dead() == (0, 2)
    assert raw.lrange(k.dead_letter, 0, -1) == ["d"]
    assert raw.hget(k.job("alive"), "state") == "pending"


def test_an_unreadable_record_waits_for_the_count_limit(store: Store, raw: redis.Redis,
                                                        lease: Lease, now: Now) -> None:
    # Its age cannot be known, so dead-ttl leaves it (doctor reports it); over dead-max it
    # is deleted the way `dlq purge` deletes it.
    k = store.keys
    raw.set(k.job("junk"), "not a hash")
    raw.rpush(k.dead_letter, "junk")
    bury(store, lease, "old")
    raw.hset(k.job("old"), "updated_at", f"{now() - 1000:.6f}")
    raw.hset(k.config, "dead-ttl", "100")
    assert store.prune_dead() == (0, 0)
    raw.hset(k.config, "dead-max", "1")
    assert store.prune_dead() == (2, 0)
    assert raw.exists(k.dead_letter, k.job("junk"), k.job("old")) == 0


def test_a_call_handles_at_most_its_batch(store: Store, raw: redis.Redis,
                                          lease: Lease) -> None:
    k = store.keys
    for i in range(7):
        bury(store, lease, f"d{i}")
    raw.hset(k.config, "dead-max", "1")
    assert store.prune_dead(batch=4) == (4, 0)
    assert store.prune_dead(batch=4) == (2, 0)
    assert raw.lrange(k.dead_letter, 0, -1) == ["d6"]


def test_a_dlq_of_the_wrong_type_is_left_alone(store: Store, raw: redis.Redis) -> None:
    k = store.keys
    raw.set(k.dead_letter, "x")
    raw.hset(k.config, "dead-max", "1")
    assert store.prune_dead() == (0, 0)
    assert raw.get(k.dead_letter) == "x"
