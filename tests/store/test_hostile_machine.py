"""Generated sequences of jobs, worker and scheduler steps, admin commands, garbage config
and corrupted records, against a real Redis (hypothesis).

After every step no exception escapes but QueueCTL's own (QueueCtlError and the
Quarantined outcome); at the end of every sequence doctor finds nothing it cannot
explain by what was corrupted, and after ``doctor --repair`` it finds nothing at all.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from queuectl.core import doctor
from queuectl.core.client import Client
from queuectl.core.errors import QueueCtlError
from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec, JobState, spec_from_json
from queuectl.core.policy import POLICY_KEYS, Policy
from queuectl.core.store import Fetched, Quarantined, Store

IDS = st.sampled_from([f"j{i}" for i in range(8)])
QUEUES = st.sampled_from(["default", "q1", "q2"])
WORKERS = st.sampled_from(["w1", "w2"])
GARBAGE = st.one_of(st.sampled_from(["abc", "", "-1", "1e999", "1.5", "9" * 30, "inf",
                                     "processing", "pending", "dead", "{}", "x y"]),
                    st.text(max_size=8))
FIELDS = st.sampled_from(["state", "attempts", "lease", "queue", "max_retries", "timeout",
                          "run_at", "worker", "interrupted", "lost", "command", "id", "env",
                          "log_size", "exit_code"])
JSONISH = st.one_of(
    st.text(max_size=60),
    st.builds(lambda i, c, extra: f'{{"id":"{i}","command":"{c}"{extra}}}', IDS,
              st.sampled_from(["true", "false", "", "exit 3"]),
              st.sampled_from(["", ',"max_retries":true', ',"timeout":1e-300', ',"queue":"a b"',
                               ',"run_at":99999999999', ',"id":"dup"', ',"env":{"A":"b"}',
                               ',"env":{"QUEUECTL_X":"1"}', ',"nope":1', ',"timeout":"3"'])),
)

REDIS_URL: list[str] = []


@pytest.fixture(autouse=True)
def _url(redis_url: str) -> Iterator[None]:
    REDIS_URL[:] = [redis_url]
    yield


def allowed(call: Callable[[], Any]) -> Any:
    """Run ``call``; QueueCTL's own errors and outcomes are fine, anything else fails."""
    try:
        return call()
    except (QueueCtlError, Quarantined):
        return None


class HostileQueue(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.raw = redis.Redis.from_url(REDIS_URL[0], encoding_errors="surrogateescape")
        self.store = Store(self.raw, Keys(f"qh{uuid.uuid4().hex[:10]}"), Policy())
        self.client = Client(self.store)
        self.k = self.store.keys
        self.held: dict[str, list[Fetched]] = {"w1": [], "w2": []}
        self.corrupted: set[str] = set()
        self.config_broken = False

    def teardown(self) -> None:
        try:
            self._final_check()
        finally:
            self.raw.close()

    # -- clients ------------------------------------------------------------------------
    @rule(job_id=IDS, queue=QUEUES, command=st.sampled_from(["true", "false", "sleep 1"]),
          retries=st.none() | st.integers(0, 3), later=st.booleans(), replace=st.booleans())
    def enqueue(self, job_id: str, queue: str, command: str, retries: int | None, later: bool,
                replace: bool) -> None:
        run_at = datetime.now(UTC) + timedelta(hours=1) if later else None
        spec = JobSpec(id=job_id, command=command, queue=queue, max_retries=retries,
                       run_at=run_at)
        allowed(lambda: self.store.enqueue(spec, replace=replace))

    @rule(text=JSONISH)
    def enqueue_json(self, text: str) -> None:
        spec = allowed(lambda: spec_from_json(text))
        if spec is not None:
            allowed(lambda: self.store.enqueue(spec))

    @rule(job_ids=st.lists(IDS, max_size=4), replace=st.booleans())
    def enqueue_many(self, job_ids: list[str], replace: bool) -> None:
        specs = [JobSpec(id=i, command="true") for i in dict.fromkeys(job_ids)]
        allowed(lambda: self.store.enqueue_many(specs, replace=replace))

    # -- workers ------------------------------------------------------------------------
    @rule(worker=WORKERS, queues=st.lists(QUEUES, min_size=1, max_size=3, unique=True))
    def fetch(self, worker: str, queues: list[str]) -> None:
        self.worker_beats(worker)  # a worker registers before it fetches
        job = allowed(lambda: self.store.fetch(worker, queues))
        if job is not None:
            self.held[worker].append(job)

    @precondition(lambda self: any(self.held.values()))
    @rule(data=st.data(), ending=st.sampled_from(["complete", "fail", "release", "ship"]))
    def finish(self, data: st.DataObject, ending: str) -> None:
        worker = data.draw(st.sampled_from([w for w, jobs in self.held.items() if jobs]))
        job = self.held[worker].pop(data.draw(st.integers(0, len(self.held[worker]) - 1)))
        if ending == "complete":
            allowed(lambda: self.store.complete(job, worker, b"out", 3))
        elif ending == "fail":
            allowed(lambda: self.store.fail(job, worker, b"err", 3, 1, "exit code 1"))
        elif ending == "release":
            allowed(lambda: self.store.release(job, worker))
        else:
            allowed(lambda: self.store.log_append(job, worker, b"more", 4))
            self.held[worker].append(job)

    @rule(worker=WORKERS)
    def worker_dies(self, worker: str) -> None:
        # Its heartbeat is long gone: the scheduler reaps what it held.
        self.raw.zadd(self.k.workers, {worker: 1})
        self.raw.delete(self.k.worker(worker))
        allowed(lambda: self.store.reap_worker(worker, 1.0))
        self.held[worker] = []

    @rule(worker=WORKERS)
    def worker_beats(self, worker: str) -> None:
        k = self.k
        allowed(lambda: self.store.heartbeat(k.worker(worker), k.workers, worker, 60, "i", {}))

    # -- scheduler ------------------------------------------------------------------------
    @rule(job_id=IDS)
    def make_due(self, job_id: str) -> None:
        for zset in (self.k.retry_queue, self.k.delayed):
            if self.raw.zscore(zset, job_id) is not None:
                self.raw.zadd(zset, {job_id: 0})

    @rule()
    def promote(self) -> None:
        allowed(lambda: self.store.promote_due(100))

    @rule()
    def prune(self) -> None:
        allowed(lambda: self.store.prune(100))
        allowed(lambda: self.store.prune_queues(["default", "q1", "q2"]))

    # -- admin --------------------------------------------------------------------------------
    @rule(job_id=IDS)
    def cancel(self, job_id: str) -> None:
        allowed(lambda: self.store.cancel(job_id))

    @rule(job_ids=st.lists(IDS, max_size=3))
    def dlq_retry(self, job_ids: list[str]) -> None:
        allowed(lambda: self.store.dlq_retry(job_ids))

    @rule()
    def dlq_purge(self) -> None:
        allowed(self.store.purge_dlq)

    @rule(job_ids=st.lists(IDS, max_size=3), purge=st.booleans())
    def quarantine(self, job_ids: list[str], purge: bool) -> None:
        if purge:
            allowed(lambda: self.store.quarantine_purge(job_ids))
        else:
            allowed(lambda: self.store.quarantine_retry(job_ids))

    # -- every read the CLI makes, on whatever the store holds now --------------------------
    @rule(queue=st.none() | QUEUES, limit=st.integers(0, 5))
    def read_everything(self, queue: str | None, limit: int) -> None:
        client = self.client
        allowed(lambda: client.list_jobs(None, queue, limit))
        for state in JobState:
            allowed(partial(client.list_jobs, state, queue, limit))
        allowed(client.status)
        allowed(lambda: client.quarantine_list(10))
        allowed(lambda: client.dlq_list(10))
        ids = [f"j{i}" for i in range(8)]
        for job_id in ids:
            allowed(partial(client.find, job_id))
            allowed(partial(client.logs, job_id))
            allowed(partial(client.quarantine_reason, job_id))
        allowed(lambda: client.wait([i for i in ids if client.redis.exists(client.keys.job(i))],
                                    timeout=0.0))
        allowed(client.config_list)

    @rule(command=st.text(min_size=1, max_size=20), retries=st.integers(-2, 1002),
          timeout=st.floats(allow_nan=True, allow_infinity=True), delay=st.floats(-10, 10))
    def client_enqueue(self, command: str, retries: int, timeout: float, delay: float) -> None:
        allowed(lambda: self.client.enqueue(command, max_retries=retries, timeout=timeout,
                                            delay=delay))

    # -- hostile writes ---------------------------------------------------------------------
    @rule(name=st.sampled_from(sorted(POLICY_KEYS)), value=GARBAGE)
    def garbage_config(self, name: str, value: str) -> None:
        self.raw.hset(self.k.config, name, value)
        self.config_broken = True

    def _existing(self) -> list[str]:
        return [i for i in (f"j{n}" for n in range(8)) if self.raw.exists(self.k.job(i))]

    @precondition(lambda self: bool(self._existing()))
    @rule(data=st.data(), field=FIELDS, value=GARBAGE, poke=st.booleans())
    def corrupt_record(self, data: st.DataObject, field: str, value: str, poke: bool) -> None:
        job_id = data.draw(st.sampled_from(self._existing()))
        self.raw.hset(self.k.job(job_id), field, value)
        self.corrupted.add(job_id)
        if poke:
            # Whatever would meet this record next meets it now: a fetch, a promotion,
            # the finish or hand-back of a worker that held it, recovery.
            self.make_due(job_id)
            self.promote()
            self.fetch("w2", ["default", "q1", "q2"])
            for worker, jobs in self.held.items():
                for job in [j for j in jobs if j.id == job_id]:
                    jobs.remove(job)
                    allowed(partial(self.store.fail, job, worker, b"", 0, 1, "exit code 1"))
            self.worker_dies("w1")

    @rule(queue=QUEUES)
    def break_a_marker(self, queue: str) -> None:
        self.raw.delete(self.k.wake(queue))
        self.raw.set(self.k.wake(queue), "x")

    @invariant()
    def policy_is_always_usable(self) -> None:
        policy = self.store.policies.refresh().policy
        assert policy.backoff_base > 0 and policy.max_lost >= 1

    # -- the end ------------------------------------------------------------------------------
    def _final_check(self) -> None:
        report = doctor.run(self.store, fix=False)
        for problem in report.problems:
            if problem.startswith("config "):
                assert self.config_broken, problem
            elif problem.startswith("key ") and ":wake:" in problem:
                continue  # a marker this sequence broke
            else:
                job_id = problem.split(":", 1)[0].removeprefix("job ")
                assert job_id in self.corrupted, (problem, report.problems)
        self.raw.delete(self.k.config)
        repaired = doctor.run(self.store, fix=True)
        assert sorted(repaired.repaired) == sorted(repaired.problems), repaired.problems
        assert doctor.run(self.store, fix=False).problems == []


HostileQueue.TestCase.settings = settings(
    max_examples=400, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TestHostileQueue = HostileQueue.TestCase
