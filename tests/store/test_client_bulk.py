"""The client's one-round-trip calls: enqueue without a read-back, get_many, counts and
wait, against real Redis. Round trips are counted at the socket (each packed request
the client's connections send), not timed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from queuectl.client import Client, Job, JobSpec, JobState, NotFoundError
from queuectl.core.keys import Keys
from queuectl.core.settings import PolicyDefaults
from queuectl.core.store import Store
from tests.redis_server import LocalRedis


class CountingConnection(redis.Connection):
    """A real connection that counts the requests it sends (a pipeline is one)."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


@pytest.fixture
def counted(own_redis: LocalRedis) -> Iterator[Client]:
    pool = redis.ConnectionPool.from_url(own_redis.url, connection_class=CountingConnection)
    r = redis.Redis(connection_pool=pool)
    client = Client(Store(r, Keys("qr"), PolicyDefaults()))
    client.store.load_scripts()
    yield client
    r.close()


def round_trips(call: Any) -> tuple[int, Any]:
    before = CountingConnection.sent
    result = call()
    return CountingConnection.sent - before, result


def finish(client: Client, queue: str, n: int, *, ok: bool = True) -> None:
    for _ in range(n):
        job = client.store.fetch("w", [queue])
        assert job is not None
        if ok:
            client.store.complete(job, "w", b"", 0)
        else:
            client.store.fail(job, "w", b"", 0, 1, "exit code 1")


@pytest.mark.parametrize("options", [
    {},
    {"job_id": "given", "queue": "q2", "max_retries": 4, "timeout": 1.2345678},
    {"env": {"REGION": "eu"}},
    {"run_at": datetime.now(UTC) + timedelta(hours=1)},
    {"delay": 30.5},
    {"delay": 0},
])
def test_enqueue_is_one_round_trip_and_returns_the_stored_record(
        counted: Client, options: dict[str, Any]) -> None:
    trips, job = round_trips(lambda: counted.enqueue("echo hi", **options))
    assert trips == 1
    assert job == counted.get(job.id)


def test_enqueue_with_replace_returns_the_new_record(counted: Client) -> None:
    counted.enqueue("true", job_id="again")
    finish(counted, "default", 1)
    job = counted.enqueue("echo new", job_id="again", replace=True)
    assert job == counted.get("again")
    assert (job.command, job.state, job.attempts) == ("echo new", JobState.PENDING, 0)


def test_get_many_is_one_round_trip_per_thousand_ids(counted: Client) -> None:
    ids = [r.id for r in counted.enqueue_many(JobSpec(command="true") for _ in range(2500))]
    asked = [*ids, "missing"]
    trips, got = round_trips(lambda: counted.get_many(asked))
    assert trips == 3
    assert list(got) == asked
    assert got["missing"] is None
    for job_id in (ids[0], ids[1234], ids[-1]):
        assert got[job_id] == counted.get(job_id)


def test_counts_are_the_running_totals_per_queue(counted: Client) -> None:
    counted.enqueue_many([JobSpec(command="true", queue="a") for _ in range(3)]
                         + [JobSpec(command="false", queue="b", max_retries=0)])
    finish(counted, "a", 2)
    finish(counted, "b", 1, ok=False)
    trips, counts = round_trips(counted.counts)
    assert trips == 1
    zero = {"runs_completed": 0, "runs_failed": 0, "retries": 0, "buried": 0, "runs_lost": 0}
    assert counts == {"a": zero | {"runs_completed": 2},
                      "b": zero | {"runs_failed": 1, "buried": 1}}
    status = counted.status()
    assert {q.name: q.totals for q in status.queues if q.name in counts} == counts


def test_wait_costs_a_round_trip_per_thousand_ids(counted: Client) -> None:
    ids = [r.id for r in counted.enqueue_many(JobSpec(command="true") for _ in range(2500))]
    finish(counted, "default", 2500)
    trips, done = round_trips(lambda: counted.wait(ids, timeout=10))
    assert trips == 6  # the states, then the records of the jobs that ended
    assert len(done) == 2500
    assert all(s.state is JobState.COMPLETED and isinstance(s.job, Job)
               for s in done.values())


def test_wait_polls_only_the_jobs_still_open(counted: Client) -> None:
    done = counted.enqueue("true", job_id="done")
    finish(counted, "default", 1)
    counted.enqueue("true", job_id="open", queue="nobody")
    with pytest.raises(Exception, match="timed out waiting for 1 job"):
        counted.wait([done.id, "open"], timeout=0.3)
    with pytest.raises(NotFoundError):
        counted.wait(["never"], timeout=1)
