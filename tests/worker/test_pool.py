"""The pool in-process: real Redis, real job processes, one Worker object in this process.

What the process-level tests cannot reach quickly: a slot that meets an error no
job should cause, the count of runs this host could not start, a hard stop.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState
from queuectl.core.settings import Settings
from queuectl.core.store import Fetched, Store
from queuectl.worker.outcome import Ending, RunResult
from queuectl.worker.pool import ENVIRONMENT_FAILURE_LIMIT, Worker


class CountingStore(Store):
    """The real Store, counting the scripts it runs by name."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.calls: Counter[str] = Counter()

    def _run(self, name: str, keys: Any, args: Any, client: Any = None) -> Any:
        self.calls[name] += 1
        return super()._run(name, keys, args, client)


def settle(client: Client, job_id: str, *states: JobState, timeout: float = 20.0) -> JobState:
    deadline = time.monotonic() + timeout
    while True:
        state = client.get(job_id).state
        if state in states:
            return state
        assert time.monotonic() < deadline, f"{job_id} is {state.value}, not {states}"
        time.sleep(0.02)


def stopped_at_the_end(client: Client, settings: Settings, **overrides: object
                       ) -> Iterator[Worker]:
    """A two-slot worker on ``default`` (not started), stopped and closed afterwards."""
    w = Worker(client.store, settings.model_copy(update={"shutdown_grace": 5.0, **overrides}),
               2, ["default"])
    yield w
    w.hard_stop()
    w.join(10)
    w.close()


@pytest.fixture
def worker(client: Client, settings: Settings) -> Iterator[Worker]:
    yield from stopped_at_the_end(client, settings)


def test_jobs_run_to_their_end_in_process(worker: Worker, client: Client) -> None:
    worker.start()
    ok = client.enqueue("echo done")
    bad = client.enqueue("exit 4", max_retries=0)
    assert settle(client, ok.id, JobState.COMPLETED) is JobState.COMPLETED
    assert settle(client, bad.id, JobState.DEAD) is JobState.DEAD
    assert client.get(bad.id).exit_code == 4
    assert worker.reports.processed == 2 and worker.reports.failed == 1
    key = client.keys.worker(worker.id)
    deadline = time.monotonic() + 10
    while client.redis.hget(key, "slots_alive") != b"2":  # the next beat reports the slots
        assert time.monotonic() < deadline, client.redis.hgetall(key)
        time.sleep(0.05)


def test_a_slot_survives_an_error_no_job_should_cause(worker: Worker, client: Client) -> None:
    # A held job whose env does not decode (fetch never hands out such a record; this is
    # the pool's own safety net): the run cannot be made, the job goes back, the slot
    # goes on.
    worker.start()
    client.enqueue("true", job_id="odd", queue="side")  # a queue the slots do not read
    # Leased as the worker's own calls lease, so that it holds the job (else its
    # reconcile would hand it back as one whose fetch reply was lost).
    tag = worker.reports._call()
    held = client.store.fetch(worker.id, ["side"], str(tag))
    worker.reports._answered(tag, held)
    assert held is not None
    broken = Fetched(held.id, held.lease, held.command, held.timeout, held.attempts,
                     held.queue, held.trace_context, env="{not json")
    worker._run(5, broken)
    record = client.get("odd")
    assert (record.state, record.attempts, record.interrupted) == (JobState.PENDING, 1, 1)
    assert "the worker failed to run it" in str(record.last_error)
    after = client.enqueue("true")
    assert settle(client, after.id, JobState.COMPLETED) is JobState.COMPLETED
    assert worker.alive() and worker.fatal is None


def test_runs_this_host_cannot_start_stop_the_worker_saying_why(worker: Worker,
                                                               client: Client) -> None:
    failed = RunResult(Ending.ENVIRONMENT, None, "cannot create a log file: No space left",
                       b"", 0, 0.0)
    for _ in range(ENVIRONMENT_FAILURE_LIMIT - 1):
        worker._count_environment(failed)
        assert worker.fatal is None
    worker._count_environment(RunResult(Ending.EXITED, 0, "", b"", 0, 0.0))  # one works
    for _ in range(ENVIRONMENT_FAILURE_LIMIT):
        worker._count_environment(failed)
    assert worker.fatal is not None and worker.fatal.code == 1
    assert "No space left" in worker.fatal.reason
    assert worker.stopping.is_set() and not worker.hard.is_set(), "it drains"


def test_a_hard_stop_hands_running_jobs_back(worker: Worker, client: Client) -> None:
    worker.start()
    job = client.enqueue("sleep 30")
    settle(client, job.id, JobState.PROCESSING)
    stopper = threading.Thread(target=worker.hard_stop)
    stopper.start()
    stopper.join(10)
    worker.join(15)
    assert not worker.alive()
    record = client.get(job.id)
    assert (record.state, record.interrupted) == (JobState.PENDING, 1)
    assert json.loads(client.redis.hget(client.keys.worker(worker.id), "current") or "[]") \
        in ([], [job.id])


def test_a_busy_slot_finishes_and_fetches_in_one_call_and_records_the_spawn(
        client: Client, settings: Settings) -> None:
    """One slot, many jobs: after its first fetch, each outcome brings the next job
    (finish_fetch.lua); every run's spawned_at lies between its fetch and its end."""
    ids = [client.enqueue(f"echo {n}").id for n in range(20)]
    store = CountingStore(client.redis, client.keys, client.store.policy)
    worker = Worker(store, settings, 1, ["default"])
    worker.start()
    try:
        for job_id in ids:
            settle(client, job_id, JobState.COMPLETED)
    finally:
        worker.request_stop()
        worker.join(10)
        worker.close()
    # One plain fetch to start, then one finish_fetch per job (the last finds nothing):
    # never a complete.lua, fail.lua or log_append.lua.
    assert store.calls["finish_fetch"] == len(ids), store.calls
    assert 1 <= store.calls["fetch"] <= 3, store.calls
    assert not {"complete", "fail", "log_append"} & set(store.calls), store.calls
    for job_id in ids:
        job = client.get(job_id)
        assert job.started_at is not None and job.spawned_at is not None
        assert job.finished_at is not None
        assert job.started_at <= job.spawned_at <= job.finished_at
        assert job.spawned_at - job.started_at < 5.0


def test_a_stop_leaves_one_marker_for_the_fetches_behind_the_waits(
        worker: Worker, client: Client) -> None:
    """Each idle slot waits with a fetch queued behind its BLPOP (Store.wait_fetch). A stop
    wakes every slot with a marker and leaves one more, which the fetch behind the last
    wait finds: a job enqueued just then stays pending."""
    worker.start()
    wakeup = client.keys.wakeup(worker.id)
    deadline = time.monotonic() + 10
    while sum(c.get("cmd") == "blpop" for c in client.redis.client_list()) < 2:
        assert time.monotonic() < deadline, "both slots wait"
        time.sleep(0.01)
    worker.request_stop()
    worker.join(10)
    assert not worker.alive()
    assert client.redis.llen(wakeup) == 1
    job = client.enqueue("true")
    assert client.store.fetch(worker.id, ["default"]) is None
    assert client.get(job.id).state is JobState.PENDING
