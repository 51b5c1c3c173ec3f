"""The scheduler against real Redis: real processes, and the Scheduler class in a thread.

Timing is never asserted beyond "eventually, within a generous deadline" and
"not before due" (checked with server times); measured delays are printed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Protocol

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import Settings
from queuectl.core.store import Store
from queuectl.scheduler.loop import REGISTRY_RETENTION, Scheduler


class RestartableRedis(Protocol):
    """What the ``own_redis`` fixture offers (tests/redis_server.py's LocalRedis)."""

    @property
    def url(self) -> str: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


def eventually(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``check`` until it is true; return the seconds it took."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except redis.ConnectionError:
            pass  # a test that restarts Redis polls through the outage
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def server_now(r: redis.Redis) -> float:
    secs, micros = r.time()
    return float(secs) + micros / 1e6


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class SchedulerProcess:
    """``python -m queuectl.scheduler.main`` with its stderr in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._stderr: IO[bytes] = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuectl.scheduler.main"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr,
        )

    @property
    def id(self) -> str:
        return f"{socket.gethostname()}-{self.proc.pid}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal_and_wait(self, signum: int, timeout: float = 10.0) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


Start = Callable[..., SchedulerProcess]


@pytest.fixture
def start_scheduler(env: dict[str, str], tmp_path: Path) -> Iterator[Start]:
    started: list[SchedulerProcess] = []

    def start(extra: dict[str, str] | None = None) -> SchedulerProcess:
        proc = SchedulerProcess({**env, **(extra or {})},
                                tmp_path / f"scheduler-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()
        print(f"--- {proc.log.name}\n{proc.output()}")


def registered(client: Client, proc: SchedulerProcess) -> bool:
    return bool(client.redis.exists(client.keys.scheduler(proc.id)))


# -- real processes --------------------------------------------------------------------------
def test_delayed_job_is_promoted_when_due_and_not_before(client: Client,
                                                         start_scheduler: Start) -> None:
    proc = start_scheduler()
    eventually(lambda: registered(client, proc), 15, "the scheduler beats")
    job = client.enqueue("true", job_id="later", delay=1.5)
    assert job.state is JobState.SCHEDULED and job.run_at is not None
    took = eventually(lambda: client.get("later").state is JobState.PENDING, 10,
                      "the delayed job becomes pending")
    promoted = client.get("later")
    # updated_at is the server's time when promote.lua moved the job.
    assert promoted.updated_at >= job.run_at
    print(f"promoted {promoted.updated_at - job.run_at:.3f}s after due ({took:.2f}s of polling)")
    assert client.redis.lrange(client.keys.queue("default"), 0, -1) == [b"later"]
    assert client.redis.zcard(client.keys.delayed) == 0
    assert proc.proc.poll() is None


def test_a_due_retry_is_promoted(client: Client, start_scheduler: Start) -> None:
    store = Store(client.redis, client.keys, client.store.policy.model_copy(
        update={"backoff_base": 0.5}))
    store.enqueue(JobSpec(id="r", command="false", queue="q"))
    job = store.fetch("w1", ["q"])
    assert job is not None
    outcome = store.fail(job, "w1", b"", 0, 1, "exit code 1")
    assert outcome.retry_at is not None
    start_scheduler()
    eventually(lambda: client.get("r").state is JobState.PENDING, 10, "the retry is due")
    assert client.get("r").updated_at >= outcome.retry_at
    assert client.redis.lrange(client.keys.queue("q"), 0, -1) == [b"r"]


def test_the_scheduler_keeps_the_dlq_within_dead_max(client: Client,
                                                     start_scheduler: Start) -> None:
    # Retention of dead jobs is the scheduler's: the oldest beyond dead-max go, with
    # their records and output.
    k = client.keys
    store = Store(client.redis, client.keys, client.store.policy.model_copy(
        update={"max_retries": 0}))
    for i in range(5):
        store.enqueue(JobSpec(id=f"d{i}", command="false"))
        job = store.fetch("w1", ["default"])
        assert job is not None
        store.fail(job, "w1", b"out", 3, 1, "exit code 1")
    client.redis.hset(k.config, "dead-max", "2")
    start_scheduler()
    eventually(lambda: client.redis.llen(k.dead_letter) == 2, 20, "the DLQ is trimmed")
    assert client.redis.lrange(k.dead_letter, 0, -1) == [b"d3", b"d4"]
    assert client.redis.exists(k.job("d0"), k.log("d0"), k.job("d2")) == 0
    assert client.get("d4").state is JobState.DEAD


def test_two_schedulers_promote_each_job_exactly_once(client: Client,
                                                      start_scheduler: Start) -> None:
    k, r = client.keys, client.redis
    # Small batches, and due times spread over a second, keep both replicas promoting
    # rounds over the same ids at the same time.
    procs = [start_scheduler({"QUEUECTL_SCHEDULER_BATCH": "50"}) for _ in range(2)]
    for proc in procs:
        eventually(partial(registered, client, proc), 15, f"scheduler {proc.id} beats")
    n = 3000
    due = server_now(r) + 2.0  # far enough ahead that every job is stored as scheduled
    started = time.monotonic()
    results = client.enqueue_many(
        JobSpec(id=f"d{i:04d}", command="true", queue="nobody",
                run_at=at(due + (i % 100) / 100))
        for i in range(n)
    )
    print(f"enqueued {n} delayed jobs in {time.monotonic() - started:.2f}s")
    assert Counter(res.state for res in results) == {JobState.SCHEDULED: n}

    took = eventually(lambda: r.zcard(k.delayed) == 0 and r.zcard(k.retry_queue) == 0, 60,
                      "both schedulers empty the delayed set")
    print(f"delayed set empty {took:.2f}s after enqueueing")
    ids = [text(i) for i in r.lrange(k.queue("nobody"), 0, -1)]
    assert len(ids) == n
    assert Counter(ids) == Counter({f"d{i:04d}": 1 for i in range(n)})
    pipe = r.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(k.job(job_id), "state")
    assert set(pipe.execute()) == {b"pending"}

    # Each replica counts only the jobs it moved itself: the counts add up to n exactly.
    def counts() -> list[int]:
        return [int(r.hget(k.scheduler(p.id), "promoted") or -1) for p in procs]

    eventually(lambda: sum(counts()) == n, 10, f"promoted counters add up to {n}")
    print(f"promoted per replica: {counts()}")
    assert all(p.proc.poll() is None for p in procs)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_the_scheduler_cleanly(signum: int, client: Client,
                                            start_scheduler: Start) -> None:
    k = client.keys
    proc = start_scheduler()
    eventually(lambda: registered(client, proc), 15, "the scheduler beats")
    status = {text(a): text(b) for a, b in client.redis.hgetall(k.scheduler(proc.id)).items()}
    assert status["host"] == socket.gethostname()
    assert status["pid"] == str(proc.proc.pid)
    assert status["promoted"] == "0"
    assert float(status["started_at"]) <= float(status["last_beat"])
    assert 0 < client.redis.pttl(k.scheduler(proc.id)) <= 3000  # QUEUECTL_WORKER_TTL=3
    assert client.redis.zscore(k.schedulers, proc.id) is not None
    assert proc.id in client.status().schedulers

    code, took = proc.signal_and_wait(signum)
    print(f"{signal.Signals(signum).name}: exited {code} after {took:.2f}s")
    assert code == 0
    assert client.redis.exists(k.scheduler(proc.id)) == 0
    assert client.redis.zscore(k.schedulers, proc.id) is None
    out = proc.output()
    assert f"{signal.Signals(signum).name} received" in out
    assert "stopped; promoted 0 job(s)" in out
    assert "Traceback" not in out


def test_scheduler_survives_a_redis_restart(settings: Settings, own_redis: RestartableRedis,
                                            env: dict[str, str],
                                            start_scheduler: Start) -> None:
    own = Client.connect(settings.model_copy(update={"redis_url": own_redis.url}))
    try:
        proc = start_scheduler({"QUEUECTL_REDIS_URL": own_redis.url})
        eventually(lambda: registered(own, proc), 15, "the scheduler beats")
        job = own.enqueue("true", job_id="survivor", delay=1.0)
        assert job.state is JobState.SCHEDULED and job.run_at is not None

        own_redis.stop()  # SHUTDOWN: the AOF keeps the delayed job
        # Down for longer than redis-py's own retries, so the scheduler sees the outage.
        time.sleep(2.0)
        assert proc.proc.poll() is None
        own_redis.start()

        took = eventually(lambda: own.get("survivor").state is JobState.PENDING, 20,
                          "the delayed job is promoted after Redis returns")
        print(f"promoted {took:.2f}s after Redis came back")
        assert own.get("survivor").updated_at >= job.run_at
        assert own.redis.lrange(own.keys.queue("default"), 0, -1) == [b"survivor"]
        assert proc.proc.poll() is None
        eventually(lambda: "Redis is back" in proc.output(), 10, "reconnect is logged")
        out = proc.output()
        assert out.count("unavailable") == 1  # one line per outage, not one per retry
        assert "Traceback" not in out
        code, _ = proc.signal_and_wait(signal.SIGTERM)
        assert code == 0
    finally:
        own.redis.close()


def test_unreachable_redis_at_start_is_waited_for(start_scheduler: Start) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port: the scheduler must wait, not crash or spin.
    proc = start_scheduler({"QUEUECTL_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    eventually(lambda: "unavailable" in proc.output(), 15, "the outage is logged")
    time.sleep(1.5)
    assert proc.proc.poll() is None
    assert proc.output().count("unavailable") == 1
    code, took = proc.signal_and_wait(signal.SIGTERM)
    print(f"stopped during the outage after {took:.2f}s")
    assert code == 0


def test_wrong_credentials_fail_with_one_line(own_redis: RestartableRedis,
                                              start_scheduler: Start) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_set("requirepass", "s3cret")
    admin.close()
    try:
        proc = start_scheduler({"QUEUECTL_REDIS_URL": own_redis.url})
        assert proc.proc.wait(timeout=30) == 6
        last = proc.output().strip().splitlines()[-1]
        assert last.startswith("queuectl-scheduler: error: Redis at "), last
        assert "refused the credentials" in last
        assert "Traceback" not in proc.output()
    finally:
        admin = redis.Redis.from_url(own_redis.url, password="s3cret")
        admin.config_set("requirepass", "")
        admin.close()


def test_invalid_environment_fails_with_one_line(start_scheduler: Start) -> None:
    proc = start_scheduler({"QUEUECTL_SCHEDULER_BATCH": "lots"})
    assert proc.proc.wait(timeout=30) == 3
    assert proc.output().splitlines() == [
        "queuectl-scheduler: error: invalid environment QUEUECTL_SCHEDULER_BATCH: "
        "must be a whole number"
    ]


# -- the Scheduler class in a thread ----------------------------------------------------------
class Running:
    """A Scheduler run in a thread, stopped on exit."""

    def __init__(self, client: Client, settings: Settings, **overrides: object) -> None:
        self.stop = threading.Event()
        self.scheduler = Scheduler(client.store, settings.model_copy(update=overrides),
                                   self.stop, scheduler_id="in-process")
        self.thread = threading.Thread(target=self.scheduler.run, daemon=True)

    def __enter__(self) -> Scheduler:
        self.thread.start()
        return self.scheduler

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()


def test_a_new_earliest_job_wakes_a_long_sleep(client: Client, settings: Settings) -> None:
    # Interval and heartbeat of a minute: only the wake marker can end the sleep in time.
    with Running(client, settings, scheduler_interval=60.0, heartbeat_interval=60.0):
        eventually(lambda: client.redis.exists(client.keys.scheduler("in-process")) == 1, 10,
                   "the first beat")
        time.sleep(0.2)  # let it settle into its long sleep
        job = client.enqueue("true", job_id="soon", delay=0.3)
        took = eventually(lambda: client.get("soon").state is JobState.PENDING, 10,
                          "the job is promoted long before the 60 s sleep ends")
        print(f"promoted after {took:.2f}s")
        assert job.run_at is not None and client.get("soon").updated_at >= job.run_at


def test_full_batches_are_promoted_back_to_back(client: Client, settings: Settings) -> None:
    k = client.keys
    t = server_now(client.redis)
    client.enqueue_many(JobSpec(id=f"b{i}", command="true", run_at=at(t + 0.05))
                        for i in range(95))
    client.enqueue("true", job_id="later", delay=30)
    eventually(lambda: server_now(client.redis) > t + 0.1, 5, "the batch is due")
    scheduler = Scheduler(client.store, settings.model_copy(update={"scheduler_batch": 10}),
                          threading.Event(), scheduler_id="s")
    wait = scheduler.promote_due()  # one round: ten full batches and a partial one
    assert client.redis.llen(k.queue("default")) == 95
    assert scheduler.promoted == 95
    assert 0 < wait <= settings.scheduler_interval  # "later" is 30 s away: capped


def test_nothing_scheduled_sleeps_the_full_interval(client: Client, settings: Settings) -> None:
    scheduler = Scheduler(client.store, settings.model_copy(update={"scheduler_interval": 7.0}),
                          threading.Event(), scheduler_id="s")
    assert scheduler.promote_due() == 7.0
    client.enqueue("true", job_id="soon", delay=3)
    assert 1.0 < scheduler.promote_due() <= 3.0


def test_heartbeat_and_registry_retention(client: Client, settings: Settings) -> None:
    k = client.keys
    now = server_now(client.redis)
    client.redis.zadd(k.schedulers, {"gone-pod": now - REGISTRY_RETENTION - 60,
                                     "recent-pod": now - 60})
    scheduler = Scheduler(client.store, settings, threading.Event(), scheduler_id="me")
    scheduler.promoted = 12
    scheduler.beat()
    status = client.redis.hgetall(k.scheduler("me"))
    assert status[b"promoted"] == b"12"
    assert status[b"pid"] == str(os.getpid()).encode()
    members = {text(m) for m in client.redis.zrange(k.schedulers, 0, -1)}
    assert members == {"me", "recent-pod"}


def test_stop_ends_run_promptly_and_deregisters(client: Client, settings: Settings) -> None:
    k = client.keys
    runner = Running(client, settings, scheduler_interval=30.0)
    with runner:
        eventually(lambda: client.redis.exists(k.scheduler("in-process")) == 1, 10,
                   "the first beat")
        started = time.monotonic()
        runner.stop.set()
        runner.thread.join(timeout=10)
        print(f"run() returned {time.monotonic() - started:.2f}s after stop")
        assert not runner.thread.is_alive()
    assert client.redis.exists(k.scheduler("in-process")) == 0
    assert client.redis.zscore(k.schedulers, "in-process") is None
