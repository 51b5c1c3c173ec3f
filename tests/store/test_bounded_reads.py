"""Read commands cost what they print, not what the system holds.

Cost is counted, not timed: the number of commands the Redis server processed for
one call (INFO's total_commands_processed, on a server of the test's own), which
does not depend on how busy the machine is.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import PolicyDefaults
from queuectl.core.store import Store
from tests.redis_server import LocalRedis

BIG = 3000


@pytest.fixture
def quiet(own_redis: LocalRedis) -> Iterator[Client]:
    """A client on a server nothing else talks to."""
    r = redis.Redis.from_url(own_redis.url)
    yield Client(Store(r, Keys("qb"), PolicyDefaults()))
    r.close()


def commands(client: Client) -> int:
    info = client.redis.info("stats")
    return int(info["total_commands_processed"])


def cost(client: Client, call: object) -> int:
    """Commands the server ran for ``call()`` (the two INFO calls themselves excluded)."""
    before = commands(client)
    assert callable(call)
    call()
    return commands(client) - before - 1


def fill(client: Client, queue: str, n: int, *, complete: bool) -> list[str]:
    specs = [JobSpec(id=f"{queue}-{i}", command="true", queue=queue) for i in range(n)]
    client.enqueue_many(specs)
    if complete:
        for _ in range(n):
            job = client.store.fetch("w", [queue])
            assert job is not None
            client.store.complete(job, "w", b"", 0)
    return [s.id for s in specs]


def test_listing_one_queue_costs_what_it_prints(quiet: Client) -> None:
    fill(quiet, "big", BIG, complete=True)
    fill(quiet, "small", 3, complete=True)
    page = quiet.list_jobs(JobState.COMPLETED, "small", limit=5)
    assert sorted(j.id for j in page.jobs) == ["small-0", "small-1", "small-2"]
    assert page.next_cursor is None
    spent = cost(quiet, lambda: quiet.list_jobs(JobState.COMPLETED, "small", limit=5))
    # Was: every completed record was read to filter by queue (~BIG commands).
    assert spent < 20, spent


def test_a_page_and_its_cursor_cover_a_state_exactly_once(quiet: Client) -> None:
    ids = fill(quiet, "q", 120, complete=True)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = quiet.list_jobs(JobState.COMPLETED, "q", limit=50, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(ids)
    spent = cost(quiet, lambda: quiet.list_jobs(JobState.COMPLETED, "q", limit=50,
                                                cursor="completed:60"))
    # A record and its output's length read per job printed, a few range reads.
    assert spent <= 2 * 50 + 10, spent


def test_many_queue_names_do_not_make_a_short_list_slow(quiet: Client) -> None:
    quiet.redis.sadd(quiet.keys.queues, *[f"empty{i}" for i in range(5000)])
    fill(quiet, "aaa", 5, complete=False)
    spent = cost(quiet, lambda: quiet.list_jobs(limit=5))
    # Was: one round trip per queue name. Lengths are read 200 names per round trip,
    # and the first non-empty queue fills the page.
    assert spent < 5000 / 200 * 200 + 50
    # Names that hold nothing are pruned (the scheduler does it a slice per beat).
    names = [f"empty{i}" for i in range(5000)] + ["aaa"]
    assert quiet.store.prune_queues(names) == 5000
    assert quiet.redis.smembers(quiet.keys.queues) == {b"aaa"}
    assert cost(quiet, lambda: quiet.list_jobs(limit=5)) < 25  # a record and a length a job


def test_waiting_on_many_ids_is_one_round_trip_per_thousand(quiet: Client) -> None:
    ids = fill(quiet, "w", BIG, complete=True)
    before = quiet.redis.info("stats")["total_connections_received"]
    spent = cost(quiet, lambda: quiet.wait(ids, timeout=5))
    # One HGET per id and one ZMSCORE per thousand, then one HGETALL+STRLEN+ZSCORE+HGET per
    # settled job to report it: linear in what is printed, pipelined.
    assert spent <= BIG * 5 + 10, spent
    assert quiet.redis.info("stats")["total_connections_received"] == before


def test_status_reads_per_queue_counts_from_the_indexes(quiet: Client) -> None:
    fill(quiet, "a", 4, complete=True)
    quiet.enqueue("true", queue="b")
    st = quiet.status()
    rows = {q.name: q for q in st.queues}
    assert rows["a"].states["completed"] == 4 and rows["a"].pending == 0
    assert rows["b"].pending == 1
    assert rows["a"].totals == {"runs_completed": 4, "runs_failed": 0, "retries": 0,
                                "buried": 0, "runs_lost": 0}
    assert st.states["completed"] == 4


def test_counting_what_a_list_left_out_reads_no_record(quiet: Client) -> None:
    fill(quiet, "big", BIG, complete=True)
    fill(quiet, "small", 3, complete=False)
    quiet.store.fetch("w", ["small"])
    quiet.redis.zadd(quiet.keys.workers, {"w": 1})
    assert quiet.count_jobs().total == BIG + 3
    assert quiet.count_jobs(JobState.COMPLETED, "big").total == BIG
    assert quiet.count_jobs(JobState.PENDING, "small").total == 2
    # No per-queue index of in-flight jobs: with a queue, every queue's are counted, and
    # the count says it is an upper bound.
    assert quiet.count_jobs(JobState.PROCESSING).exact
    assert not quiet.count_jobs(None, "big").exact
    assert quiet.count_jobs(None, "big").total == BIG + 1
    # Lengths only: one command per queue, worker and state, whatever the number of jobs.
    assert cost(quiet, quiet.count_jobs) < 20
    assert cost(quiet, lambda: quiet.count_jobs(JobState.COMPLETED, "big")) < 5
