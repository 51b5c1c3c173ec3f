"""The worker as it runs in production: real processes, real signals, real Redis.

Each test starts ``queuectl-worker`` (and ``queuectl-scheduler`` where retries
or delayed jobs must be promoted) as separate processes with the test's own
key prefix, drives them through Redis and signals, and checks the records,
the log files and the processes themselves. Nothing here asserts how fast
something happened; latencies are printed. The few bounds that look like
timing (a retry delay, a wake-up well under the idle poll) are logic checks
with wide margins.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import Settings

from .procs import (
    Procs,
    RedisServer,
    eventually,
    process_gone,
    read_lines,
    reap_orphans,
    subreaper,
    wait_ended,
    wait_registered,
    wait_state,
)

HEADER = re.compile(rb"^--- attempt (\d+) of job (\S+) on (\S+) at (\S+) ---$", re.MULTILINE)


# -- helpers --------------------------------------------------------------------------------------

def log_dir(env: dict[str, str]) -> Path:
    return Path(env["QUEUECTL_LOG_DIR"])


def append_id(path: Path) -> str:
    """A command that records one run of the job running it: "<id> <attempt>" on one line."""
    # One short write with O_APPEND is atomic, so concurrent jobs never interleave lines.
    return f'echo "$QUEUECTL_JOB_ID $QUEUECTL_JOB_ATTEMPT" >> {path}'


def runs_by_id(path: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in read_lines(path))


def assert_each_ran_once(path: Path, ids: list[str]) -> None:
    lines = read_lines(path)
    runs = runs_by_id(path)
    twice = {i: n for i, n in runs.items() if n > 1}
    assert not twice, f"jobs ran more than once: {dict(list(twice.items())[:10])}"
    missing = set(ids) - set(runs)
    assert not missing, f"{len(missing)} job(s) never ran, e.g. {sorted(missing)[:5]}"
    assert set(runs) == set(ids), f"unexpected ids ran: {sorted(set(runs) - set(ids))[:5]}"
    assert all(line.split()[1] == "1" for line in lines), "a run was not attempt 1"


def worker_gone(raw: redis.Redis, prefix: str, worker_id: str) -> None:
    """The worker left no trace: no status hash, no registry entry, no in-flight set."""
    k = Keys(prefix)
    # P:worker:<id> is the contract's name; the others are internal, so built by Keys.
    assert raw.exists(f"{prefix}:worker:{worker_id}") == 0, "worker status hash left behind"
    assert raw.zscore(k.workers, worker_id) is None, "registry entry left behind"
    assert raw.exists(k.inflight(worker_id)) == 0, "in-flight set left behind"


def state_counts(client: Client) -> dict[str, int]:
    return {state: n for state, n in client.status().states.items() if n}


@pytest.fixture
def reaper(procs: Procs) -> Iterator[None]:
    """Orphaned job children become ours to reap, so that a killed one truly disappears."""
    with subreaper():
        yield
        reap_orphans(exclude={p.pid for p in procs.started})


@pytest.fixture
def own(env: dict[str, str], own_redis: RedisServer) -> Iterator[Client]:
    """A client on the test's own Redis server, with the test's key prefix."""
    c = Client.connect(Settings(redis_url=own_redis.url, key_prefix=env["QUEUECTL_KEY_PREFIX"]))
    yield c
    c.redis.close()


# -- 1. the simplest job --------------------------------------------------------------------------

def test_echo_job_completes_with_its_output_in_redis_and_on_disk(
    procs: Procs, client: Client, env: dict[str, str]
) -> None:
    worker = procs.worker()
    job = client.enqueue("echo hello")

    done = wait_ended(client, [job.id])[job.id]

    assert done.state is JobState.COMPLETED
    assert (done.exit_code, done.attempts, done.last_error) == (0, 1, None)
    assert done.worker == wait_registered(client, worker)
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    tail = client.logs(job.id)
    assert b"hello\n" in tail.data
    content = (log_dir(env) / f"{job.id}.log").read_bytes()
    header = HEADER.match(content)
    assert header is not None, content
    assert header.group(1, 2) == (b"1", job.id.encode())
    assert content.endswith(b"---\nhello\n")
    # Small output: the Redis tail is the whole log, header included, and log_size counts it.
    assert tail.data == content
    assert tail.total == len(content)
    print(f"enqueue -> start {done.started_at - done.created_at:.3f}s, "
          f"run {done.finished_at - done.started_at:.3f}s")


# -- 2. retries with backoff, then the DLQ --------------------------------------------------------

def test_failing_job_backs_off_with_growing_delays_then_lands_in_dlq(
    procs: Procs, client: Client, raw: redis.Redis, env: dict[str, str], key_prefix: str
) -> None:
    client.config_set("backoff-base", "0.5")
    client.config_set("backoff-factor", "2")
    delays = [0.5, 1.0, 2.0]  # before retries 1, 2 and 3
    procs.scheduler()
    procs.worker()
    job = client.enqueue("echo failing; exit 1", max_retries=3)

    done = wait_ended(client, [job.id], timeout=30)[job.id]

    assert done.state is JobState.DEAD
    assert done.attempts == 4
    assert done.exit_code == 1
    assert done.last_error == "exit code 1: failing"
    assert raw.lrange(f"{key_prefix}:dead_letter", 0, -1) == [job.id]
    assert raw.zscore(f"{key_prefix}:retry_queue", job.id) is None
    stats = raw.hgetall(Keys(key_prefix).stats)
    assert (stats["failed:default"], stats["retried:default"], stats["dead:default"]) == (
        "4", "3", "1")

    # Every attempt appends to the job's log file under a header stamped when it started.
    content = (log_dir(env) / f"{job.id}.log").read_bytes()
    headers = HEADER.findall(content)
    assert [int(h[0]) for h in headers] == [1, 2, 3, 4]
    assert content.count(b"failing\n") == 4
    starts = [datetime.fromisoformat(h[3].decode()).timestamp() for h in headers]
    gaps = [b - a for a, b in pairwise(starts)]
    print("gaps between attempt starts:", ", ".join(f"{g:.3f}s" for g in gaps),
          "for delays", delays)
    assert gaps[1] > gaps[0] and gaps[2] > gaps[1], f"delays do not grow: {gaps}"
    for gap, delay in zip(gaps, delays, strict=True):
        # The delay runs from the failure, which comes after the start: a lower bound.
        assert gap >= delay - 0.05, f"retry came {delay - gap:.3f}s early: gaps {gaps}"
    assert done.started_at is not None
    assert abs(done.started_at - starts[3]) < 0.5  # the record keeps the last attempt's start


# -- 3. several workers, many jobs, each run once -------------------------------------------------

def test_three_workers_run_600_jobs_each_exactly_once(
    procs: Procs, client: Client, raw: redis.Redis, tmp_path: Path, key_prefix: str
) -> None:
    workers = [procs.worker({"QUEUECTL_CONCURRENCY": "4"}) for _ in range(3)]
    worker_ids = {wait_registered(client, w) for w in workers}
    runs = tmp_path / "runs.txt"
    specs = [JobSpec(id=f"j{i:04d}", command=append_id(runs)) for i in range(600)]
    ids = [s.id for s in specs]

    began = time.monotonic()
    results = client.enqueue_many(specs)
    assert all(r.state is JobState.PENDING for r in results)
    jobs = wait_ended(client, ids, timeout=90)
    took = time.monotonic() - began

    assert Counter(j.state for j in jobs.values()) == {JobState.COMPLETED: 600}
    assert all(j.attempts == 1 for j in jobs.values())
    assert_each_ran_once(runs, ids)
    per_worker = Counter(j.worker for j in jobs.values())
    print(f"600 jobs in {took:.2f}s; per worker: {dict(per_worker)}")
    assert set(per_worker) == worker_ids, "every worker should have taken part"
    assert raw.llen(f"{key_prefix}:jobs") == 0
    for wid in worker_ids:
        assert raw.scard(Keys(key_prefix).inflight(wid)) == 0
    assert all(w.alive() for w in workers)


# -- 4. a command that cannot run -----------------------------------------------------------------

def test_unknown_command_fails_cleanly_and_the_worker_lives_on(
    procs: Procs, client: Client
) -> None:
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "1"})
    worker_id = wait_registered(client, worker)
    bad = client.enqueue("nosuchcommand_xyz", max_retries=0)

    dead = wait_ended(client, [bad.id])[bad.id]

    assert dead.state is JobState.DEAD
    assert dead.exit_code == 127
    assert dead.last_error is not None and "not found" in dead.last_error, dead.last_error
    assert dead.attempts == 1
    assert b"nosuchcommand_xyz" in client.logs(bad.id).data

    good = client.enqueue("echo ok")
    done = wait_ended(client, [good.id])[good.id]
    assert done.state is JobState.COMPLETED
    assert done.worker == dead.worker == worker_id
    assert worker.alive()
    assert wait_registered(client, worker) == worker_id  # same process, same id


# -- 5. Redis restarts ----------------------------------------------------------------------------

def test_jobs_survive_worker_stop_and_redis_restart_with_aof(
    procs: Procs, own_redis: RedisServer, own: Client, tmp_path: Path
) -> None:
    c = own
    on_own = {"QUEUECTL_REDIS_URL": own_redis.url}
    runs = tmp_path / "runs.txt"
    now_ids = [c.enqueue(f"{append_id(runs)}; sleep 0.2").id for _ in range(50)]
    later_ids = [c.enqueue(append_id(runs), delay=1.0).id for _ in range(5)]
    ids = now_ids + later_ids

    first = procs.worker(on_own)
    eventually(lambda: c.redis.zcard(c.keys.completed) >= 8, what="some jobs completed")
    first.signal(signal.SIGTERM)
    assert first.wait_exit() == 0
    before = state_counts(c)
    print("before the restart:", before)
    assert before.get("processing", 0) == 0, "a drained worker holds no job"
    assert before.get("pending", 0) > 0, "the worker should not have finished everything"
    assert before.get("scheduled") == 5

    own_redis.restart()

    after = state_counts(c)
    assert after == before, "the append-only file should bring back every job"
    procs.worker(on_own)
    procs.scheduler(on_own)
    jobs = wait_ended(c, ids, timeout=40)
    assert {j.state for j in jobs.values()} == {JobState.COMPLETED}
    assert_each_ran_once(runs, ids)


def test_worker_survives_redis_going_away_while_it_runs(
    procs: Procs, own_redis: RedisServer, own: Client, tmp_path: Path
) -> None:
    c = own
    on_own = {"QUEUECTL_REDIS_URL": own_redis.url}
    runs = tmp_path / "runs.txt"
    ids = [c.enqueue(f"{append_id(runs)}; sleep 0.2").id for _ in range(50)]
    ids += [c.enqueue(append_id(runs), delay=1.5).id for _ in range(5)]
    worker = procs.worker(on_own)
    procs.scheduler(on_own)
    eventually(lambda: c.redis.zcard(c.keys.completed) >= 8, what="some jobs completed")

    # Down long enough that redis-py's own retries give up and the worker has to cope:
    # the heartbeat notices, and jobs that finish meanwhile keep their results to report.
    own_redis.stop()
    eventually(lambda: re.search(r"heartbeat: Redis at \S+ unavailable", worker.stderr()),
               what="the worker logs the outage")
    eventually(lambda: re.search(r"report \w+: Redis at \S+ unavailable", worker.stderr()),
               what="a finished job's result waits for Redis")
    assert worker.alive()
    own_redis.start()

    jobs = wait_ended(c, ids, timeout=40)
    assert {j.state for j in jobs.values()} == {JobState.COMPLETED}
    assert worker.alive()
    eventually(lambda: "heartbeat: Redis is back" in worker.stderr(),
               what="the worker logs the recovery")
    assert_each_ran_once(runs, ids)
    warnings = [line for line in worker.stderr().splitlines() if "WARNING" in line]
    print(f"{len(warnings)} warning(s) from the worker, e.g.:", *warnings[:4], sep="\n  ")


# -- 6. timeouts kill the whole process group -----------------------------------------------------

@pytest.mark.parametrize("trap", ["", "trap '' TERM; "], ids=["plain", "ignores-sigterm"])
def test_timeout_kills_background_grandchildren(
    procs: Procs, client: Client, tmp_path: Path, reaper: None, trap: str
) -> None:
    procs.worker({"QUEUECTL_KILL_GRACE": "0.5"})
    pidfile = tmp_path / "bg.pid"
    job = client.enqueue(f"{trap}sleep 300 & echo $! > {pidfile}; sleep 300",
                         timeout=1, max_retries=0)

    pid = int(eventually(lambda: pidfile.exists() and pidfile.read_text().strip(),
                         what="background pid written"))
    try:
        dead = wait_ended(client, [job.id])[job.id]
        assert dead.state is JobState.DEAD
        assert dead.last_error is not None and "timed out" in dead.last_error, dead.last_error
        assert dead.exit_code is None
        eventually(lambda: process_gone(pid), what=f"background sleep {pid} killed")
        assert dead.finished_at is not None and dead.started_at is not None
        print(f"job ended {dead.finished_at - dead.started_at:.2f}s after it started")
    finally:
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)


# -- 7. huge binary output is capped --------------------------------------------------------------

@pytest.mark.parametrize("target", ["file", "stdout"])
def test_huge_binary_output_is_capped_and_memory_stays_bounded(
    procs: Procs, client: Client, env: dict[str, str], tmp_path: Path, target: str
) -> None:
    worker = procs.worker({"QUEUECTL_LOG_TAIL_BYTES": "4096", "QUEUECTL_LOG_TARGET": target})
    source = tmp_path / "source.bin"
    job = client.enqueue(f"head -c 5000000 /dev/urandom | tee {source}")
    rss: list[int] = []

    def ended() -> bool:
        rss.append(worker.rss_kib())
        found = client.find(job.id)
        return found is not None and found.state.ended

    eventually(ended, 60, what="the 5 MB job ended")
    done = client.get(job.id)
    rss.append(worker.rss_kib())
    print(f"[{target}] worker VmRSS max {max(rss) / 1024:.1f} MiB over {len(rss)} samples")
    assert done.state is JobState.COMPLETED, done.last_error
    data = source.read_bytes()
    assert len(data) == 5_000_000
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    log_file = log_dir(env) / f"{job.id}.log"
    if target == "file":
        written = log_file.read_bytes()
    else:
        assert not log_file.exists(), "LOG_TARGET=stdout writes no log file"
        tag = f"[{job.id}] ".encode()
        lines = worker.stdout().split(b"\n")
        assert lines.pop() == b"", "the last tagged line ends with a newline"
        assert all(line.startswith(tag) for line in lines)
        written = b"\n".join(line[len(tag):] for line in lines) + b"\n"
        if not data.endswith(b"\n"):
            written = written[:-1]  # the worker ends an unfinished last line
    header = HEADER.match(written)
    assert header is not None and header.group(2) == job.id.encode()
    assert written == written[:header.end() + 1] + data, "the output is kept byte for byte"

    tail = client.logs(job.id)
    assert len(tail.data) <= 4096
    assert tail.data == written[-4096:]
    assert tail.total == len(written), "log_size counts every byte, header included"
    assert max(rss) < 200 * 1024


# -- 8. stopping a worker -------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["sigterm", "stop-command"])
def test_graceful_stop_lets_the_running_job_finish(
    procs: Procs, client: Client, raw: redis.Redis, key_prefix: str, how: str
) -> None:
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "2"})
    worker_id = wait_registered(client, worker)
    job = client.enqueue("sleep 2; echo done")
    wait_state(client, job.id, JobState.PROCESSING)

    asked = time.monotonic()
    if how == "sigterm":
        worker.signal(signal.SIGTERM)
    else:
        assert client.stop_workers(None) == [worker_id]
    assert worker.wait_exit() == 0
    print(f"[{how}] worker exited {time.monotonic() - asked:.2f}s after the stop request")

    done = client.get(job.id)
    assert done.state is JobState.COMPLETED, (done.state, done.last_error)
    assert done.attempts == 1
    assert b"done\n" in client.logs(job.id).data
    worker_gone(raw, key_prefix, worker_id)
    assert worker_id not in {w.id for w in client.workers()}


@pytest.mark.parametrize("second_signal", [False, True], ids=["grace-expires", "second-sigterm"])
def test_hard_stop_hands_the_running_job_back_to_the_front(
    procs: Procs, client: Client, raw: redis.Redis, key_prefix: str, tmp_path: Path,
    reaper: None, second_signal: bool
) -> None:
    grace = "30" if second_signal else "1"
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "1", "QUEUECTL_SHUTDOWN_GRACE": grace})
    worker_id = wait_registered(client, worker)
    pidfile = tmp_path / "child.pid"
    held = client.enqueue(f"sleep 30 & echo $! > {pidfile}; wait")
    wait_state(client, held.id, JobState.PROCESSING)
    behind = client.enqueue("echo behind")
    child = int(eventually(lambda: pidfile.exists() and pidfile.read_text().strip(),
                           what="job's child pid written"))

    asked = time.monotonic()
    worker.signal(signal.SIGTERM)
    if second_signal:
        eventually(lambda: "draining" in worker.stderr(), what="first SIGTERM handled")
        worker.signal(signal.SIGTERM)
    # The grace is 30 s in the second-signal case: exiting well before proves the second
    # signal cut it short (a logic check, not a timing one).
    assert worker.wait_exit(timeout=15) == 0
    print(f"worker exited {time.monotonic() - asked:.2f}s after the first SIGTERM")

    back = client.get(held.id)
    assert back.state is JobState.PENDING
    assert back.attempts == 1, "the run did start"
    assert back.interrupted == 1, "and it is counted as interrupted, so it uses no retry"
    assert back.last_error == "interrupted by worker shutdown"
    assert raw.lrange(f"{key_prefix}:jobs", 0, -1) == [held.id, behind.id]
    assert client.get(behind.id).attempts == 0, "nothing new is fetched while stopping"
    eventually(lambda: process_gone(child), what=f"job child {child} killed")
    worker_gone(raw, key_prefix, worker_id)


# -- 9. strict priority ---------------------------------------------------------------------------

def test_queues_are_served_in_strict_priority_order(
    procs: Procs, client: Client, tmp_path: Path
) -> None:
    order = tmp_path / "order.txt"
    low = [client.enqueue(append_id(order), queue="low").id for _ in range(20)]
    high = [client.enqueue(append_id(order), queue="high").id for _ in range(5)]
    procs.worker({"QUEUECTL_CONCURRENCY": "1", "QUEUECTL_QUEUES": "high,low"})

    jobs = wait_ended(client, low + high)

    assert {j.state for j in jobs.values()} == {JobState.COMPLETED}
    ran = [line.split()[0] for line in read_lines(order)]
    assert ran == high + low


# -- 10. waking an idle worker --------------------------------------------------------------------

def test_idle_worker_wakes_at_once_for_a_new_job(
    procs: Procs, own_redis: RedisServer, own: Client
) -> None:
    # The test's own server, so that its count of blocked clients is this worker's alone.
    c = own
    worker = procs.worker({"QUEUECTL_REDIS_URL": own_redis.url, "QUEUECTL_CONCURRENCY": "1",
                           "QUEUECTL_IDLE_WAIT": "30"})
    wait_registered(c, worker)

    def job_thread_blocked() -> bool:
        # The heartbeat blocks on its control list between beats; a second blocked client
        # is the job thread waiting for work on the queue's wake list.
        info = c.redis.info("clients")
        return int(info["blocked_clients"]) >= 2

    eventually(job_thread_blocked, what="the idle job thread blocks on the wake list")
    job = c.enqueue("echo awake")
    done = wait_ended(c, [job.id], timeout=45)[job.id]

    assert done.state is JobState.COMPLETED
    assert done.started_at is not None
    latency = done.started_at - done.created_at
    print(f"enqueue -> start {latency * 1000:.1f} ms (idle wait 30 s)")
    assert latency < 5, "the job waited for the idle timeout: the wake marker did not work"
