"""promote.lua: due retries and delayed jobs go back to their queues, exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis

from queuectl.core.models import JobSpec
from queuectl.core.store import Fetched, Store

Now = Callable[[], float]
StoreFactory = Callable[..., Store]
Lease = Callable[..., Fetched]


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def scheduled(store: Store, job_id: str, due: float, queue: str = "default") -> None:
    """Store a delayed job, then set its due time (possibly in the past) directly."""
    store.enqueue(JobSpec(id=job_id, command="true", queue=queue, run_at=at(due + 10**6)))
    store.redis.zadd(store.keys.delayed, {job_id: due})


def failed(store: Store, lease: Lease, job_id: str, due: float, queue: str = "default") -> None:
    """A failed job waiting for its retry, due at ``due``."""
    job = lease(store, JobSpec(id=job_id, command="false", queue=queue))
    store.fail(job, "w1", b"", 0, 1, "exit code 1")
    store.redis.zadd(store.keys.retry_queue, {job_id: due})


def test_only_due_items_of_both_sets_are_promoted(store: Store, raw: redis.Redis, now: Now,
                                                  lease: Lease) -> None:
    k = store.keys
    t = now()
    failed(store, lease, "retry-due", t - 1, queue="q")
    failed(store, lease, "retry-later", t + 100, queue="q")
    scheduled(store, "delayed-due", t - 2)
    scheduled(store, "delayed-later", t + 50)
    raw.delete(k.wake("q"), k.wake("default"))

    result = store.promote_due(100)
    assert result.moved == 2
    assert result.next_due == pytest.approx(t + 50, abs=1e-3)
    assert abs(result.now - now()) < 1
    assert raw.lrange(k.queue("q"), 0, -1) == ["retry-due"]
    assert raw.lrange(k.queue("default"), 0, -1) == ["delayed-due"]
    for job_id in ("retry-due", "delayed-due"):
        record = raw.hgetall(k.job(job_id))
        assert record["state"] == "pending"
        assert float(record["updated_at"]) == pytest.approx(result.now, abs=1e-3)
    # Each moved job is reported (metrics, spans); it has been ready since its due time, so
    # the promotion lag counts as waiting and the back-off or delay does not.
    report = {m.id: m for m in result.jobs}
    assert set(report) == {"retry-due", "delayed-due"}
    assert (report["retry-due"].queue, report["retry-due"].source) == ("q", "retry")
    assert (report["delayed-due"].queue, report["delayed-due"].source) == ("default", "delayed")
    assert report["retry-due"].due == pytest.approx(t - 1, abs=1e-3)
    assert report["delayed-due"].due == pytest.approx(t - 2, abs=1e-3)
    assert float(raw.hget(k.job("retry-due"), "ready_at") or 0) == pytest.approx(t - 1, abs=1e-3)
    assert float(raw.hget(k.job("delayed-due"), "ready_at") or 0) == pytest.approx(t - 2,
                                                                                  abs=1e-3)
    assert raw.hget(k.job("retry-later"), "state") == "failed"
    assert raw.hget(k.job("delayed-later"), "state") == "scheduled"
    assert raw.zrange(k.retry_queue, 0, -1) == ["retry-later"]
    assert raw.zrange(k.delayed, 0, -1) == ["delayed-later"]
    # Workers idle on both queues are woken.
    assert raw.lrange(k.wake("q"), 0, -1) == ["1"]
    assert raw.lrange(k.wake("default"), 0, -1) == ["1"]


def test_promoted_jobs_keep_due_order_and_can_be_fetched(store: Store, now: Now) -> None:
    t = now()
    for i, offset in enumerate([-3, -1, -2]):
        scheduled(store, f"d{i}", t + offset)
    assert store.promote_due(100).moved == 3
    order = []
    while (job := store.fetch("w1", ["default"])) is not None:
        order.append(job.id)
    assert order == ["d0", "d2", "d1"]


def test_nothing_due(store: Store, raw: redis.Redis, now: Now) -> None:
    k = store.keys
    empty = store.promote_due(10)
    assert empty.moved == 0 and empty.next_due is None
    scheduled(store, "later", now() + 30)
    result = store.promote_due(10)
    assert result.moved == 0
    assert result.next_due is not None and result.next_due - result.now > 25
    assert raw.hget(k.job("later"), "state") == "scheduled"
    assert raw.llen(k.queue("default")) == 0


def test_batches_are_bounded_and_report_what_is_still_due(store: Store, raw: redis.Redis,
                                                          now: Now) -> None:
    t = now()
    for i in range(5):
        scheduled(store, f"d{i}", t - 10 + i)
    first = store.promote_due(2)
    assert first.moved == 2
    assert first.next_due is not None and first.next_due <= first.now  # more is due
    assert store.promote_due(2).moved == 2
    last = store.promote_due(2)
    assert last.moved == 1 and last.next_due is None
    assert raw.lrange(store.keys.queue("default"), 0, -1) == [f"d{i}" for i in range(5)]


def test_entries_of_ended_or_vanished_jobs_are_dropped(store: Store, raw: redis.Redis,
                                                       now: Now) -> None:
    k = store.keys
    t = now()
    scheduled(store, "cancelled", t - 2)
    raw.hset(k.job("cancelled"), "state", "cancelled")  # an entry a bug left behind
    raw.zadd(k.retry_queue, {"ghost": t - 1})  # its record was purged
    scheduled(store, "ok", t - 1)
    result = store.promote_due(10)
    assert result.moved == 1
    assert raw.lrange(k.queue("default"), 0, -1) == ["ok"]
    assert raw.zcard(k.retry_queue) == 0 and raw.zcard(k.delayed) == 0
    assert raw.hget(k.job("cancelled"), "state") == "cancelled"


def test_two_promoters_at_once_move_each_job_once(store: Store, make_store: StoreFactory,
                                                   raw: redis.Redis, now: Now) -> None:
    # Two scheduler replicas promote the same due jobs at the same time, in small batches.
    k = store.keys
    ids = [f"d{i}" for i in range(60)]
    for job_id in ids:
        scheduled(store, job_id, now() - 1)
    moved: list[int] = []

    def replica(replica_store: Store) -> None:
        while (result := replica_store.promote_due(7)).moved:
            moved.append(result.moved)

    threads = [threading.Thread(target=replica, args=(s,)) for s in (store, make_store())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(moved) == 60
    assert Counter(raw.lrange(k.queue("default"), 0, -1)) == Counter({i: 1 for i in ids})


def test_a_batch_takes_the_earliest_of_both_sets(store: Store, raw: redis.Redis, now: Now,
                                                 lease: Lease) -> None:
    k = store.keys
    t = now()
    failed(store, lease, "r3", t - 3)
    scheduled(store, "d2", t - 2)
    failed(store, lease, "r1", t - 1)
    first = store.promote_due(2)
    assert [(m.id, m.source) for m in first.jobs] == [("r3", "retry"), ("d2", "delayed")]
    assert raw.zrange(k.retry_queue, 0, -1) == ["r1"] and raw.zcard(k.delayed) == 0
    assert [m.id for m in store.promote_due(2).jobs] == ["r1"]


def test_a_call_handles_at_most_its_batch(store: Store, raw: redis.Redis, now: Now) -> None:
    # The due entries are read inside the script with a LIMIT: a large backlog costs one
    # batch per call, not the size of the set.
    k = store.keys
    store.enqueue_many(JobSpec(id=f"b{i}", command="true", run_at=at(now() + 10**6))
                       for i in range(300))
    raw.zadd(k.delayed, {f"b{i}": now() - 300 + i for i in range(300)})
    result = store.promote_due(50)
    assert result.moved == 50 and result.next_due is not None and result.next_due <= result.now
    assert raw.lrange(k.queue("default"), 0, -1) == [f"b{i}" for i in range(50)]
    assert raw.zcard(k.delayed) == 250
    assert raw.zcard(k.index("default", "scheduled")) == 250


def test_without_detail_the_reply_carries_counts_and_due_times(store: Store, raw: redis.Redis,
                                                               now: Now, lease: Lease) -> None:
    t = now()
    failed(store, lease, "r1", t - 3, queue="q")
    failed(store, lease, "r2", t - 2, queue="q")
    scheduled(store, "d1", t - 1)
    result = store.promote_due(10, detail=False)
    assert result.moved == 3 and result.jobs == []
    assert result.counts == {("q", "retry"): 2, ("default", "delayed"): 1}
    assert result.dues == pytest.approx([t - 3, t - 2, t - 1], abs=1e-3)
    assert raw.lrange(store.keys.queue("q"), 0, -1) == ["r1", "r2"]
    # With detail (the default), the same counts come with each job.
    assert store.promote_due(10).counts == {}


def test_promotion_checks_the_fields_it_reads_and_the_fetch_the_rest(
        store: Store, raw: redis.Redis, now: Now, lease: Lease) -> None:
    # promote.lua reads state, queue and trace_context: garbage there (or a record that is
    # not a hash) sends the job to quarantine before anything is written. A field it does
    # not read is the business of the fetch, which quarantines the record it cannot run.
    k = store.keys
    t = now()
    for job_id, field, value in [("bad-state", "state", "bogus"), ("bad-queue", "queue", "a b"),
                                 ("bad-attempts", "attempts", "abc")]:
        failed(store, lease, job_id, t - 3)
        raw.hset(k.job(job_id), field, value)
    failed(store, lease, "no-state", t - 2)
    raw.hdel(k.job("no-state"), "state")
    failed(store, lease, "ok", t - 1)
    result = store.promote_due(100)
    assert result.moved == 2
    assert raw.lrange(k.queue("default"), 0, -1) == ["bad-attempts", "ok"]
    why = {i: str(raw.hget(k.quarantine_why, i)) for i in ("bad-state", "bad-queue", "no-state")}
    assert "field state is not a known state" in why["bad-state"]
    assert "field queue is not a queue name" in why["bad-queue"]
    assert "field state is not a known state" in why["no-state"]
    assert raw.hget(k.job("bad-state"), "state") == "bogus"  # left as found
    assert raw.zcard(k.retry_queue) == 0
    # A record that names no queue names no index either: doctor finds that entry.
    assert raw.zrange(k.index("default", "failed"), 0, -1) == ["bad-queue"]
    got = store.fetch("w1", ["default"])
    assert got is not None and got.id == "ok"
    assert "field attempts is not a number" in str(raw.hget(k.quarantine_why, "bad-attempts"))
    assert raw.hget(k.job("bad-attempts"), "attempts") == "abc"


def test_an_acl_that_denies_one_record_stops_the_batch_before_any_write(
        store: Store, now: Now, refused_with_nothing_written: Callable[..., None]) -> None:
    # ACL key patterns are globs: a user may write P:jobs:a* and not P:jobs:b*, so the
    # permission to write each record is checked for that record, before the first write.
    # Every record may be read (P:jobs: itself is in KEYS as the records' prefix).
    t = now()
    scheduled(store, "a1", t - 2)
    scheduled(store, "b1", t - 1)
    p = store.keys.prefix
    refused_with_nothing_written(
        [f"~{p}:[^j]*", f"~{p}:jobs", f"~{p}:jobs:", f"~{p}:jobs:a*", f"%R~{p}:jobs:*"],
        f"HSET on {p}:jobs:b1", lambda limited: limited.promote_due(100))


def test_an_acl_that_denies_one_queue_stops_the_batch_before_any_write(
        store: Store, now: Now, refused_with_nothing_written: Callable[..., None]) -> None:
    # The queues a batch pushes to are known only once the records are read; each one's
    # list, wake list and indexes are checked before the first write all the same.
    t = now()
    scheduled(store, "a1", t - 2, queue="q1")
    scheduled(store, "b1", t - 1, queue="q2")
    p = store.keys.prefix
    refused_with_nothing_written(
        [f"~{p}:[^q]*", f"~{p}:queues", f"~{p}:quarantine*", f"~{p}:queue:",
         f"~{p}:queue:q1", f"%R~{p}:queue:*"],
        f"RPUSH on {p}:queue:q2", lambda limited: limited.promote_due(100))
