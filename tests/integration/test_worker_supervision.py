"""A worker never dies quietly, never stops counting itself, and is the only one with its id.

Findings of "safe to run unattended", sections 2 and 3, against real worker
processes: a host that fails every run makes the worker stop and say why (exit
1, was: threads died and the worker exited 0); a corrupted in-flight entry no
longer kills the heartbeat (was: the worker dropped out of `worker list`, kept
fetching, and its running job was reaped and run twice); a second worker with
the same id refuses to start (was: the two handed each other's jobs back forever).
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from queuectl.core.client import Client
from queuectl.core.errors import EXIT_CONFLICT
from queuectl.core.models import JobState

from .procs import Procs, eventually, wait_ended, wait_registered


def one_error_line(stderr: str, prefix: str = "queuectl-worker: error: ") -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_host_that_fails_every_run_stops_the_worker_saying_why(
        procs: Procs, client: Client, env: dict[str, str]) -> None:
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "2", "QUEUECTL_SHUTDOWN_GRACE": "5"})
    wait_registered(client, worker)
    log_dir = Path(env["QUEUECTL_LOG_DIR"])
    shutil.rmtree(log_dir)
    log_dir.write_bytes(b"a file where LOG_DIR should be")
    jobs = [client.enqueue("true", max_retries=0) for _ in range(3)]

    assert worker.wait_exit(timeout=60) == 1
    line = one_error_line(worker.stderr())
    assert "cannot run jobs on this host" in line and "LOG_DIR" not in line
    assert str(log_dir) in line
    # Every job went back to its queue, none spent a retry or was lost.
    for job in jobs:
        record = client.get(job.id)
        assert record.state is JobState.PENDING, record
        assert record.attempts == record.interrupted


def test_a_corrupted_in_flight_entry_does_not_stop_the_heartbeat(
        procs: Procs, client: Client) -> None:
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "1"})
    worker_id = wait_registered(client, worker)
    k = client.keys
    client.redis.sadd(k.inflight(worker_id), "zz")
    client.redis.hset(k.job("zz"), mapping={"id": "zz", "lease": "abc", "state": "processing"})
    running = client.enqueue("sleep 3")
    # The reconcile meets zz on the next beat, sends it to quarantine, and beats on.
    eventually(lambda: client.redis.zscore(k.quarantine, "zz") is not None,
               what="the unusable entry is quarantined")
    beats = [float(client.redis.zscore(k.workers, worker_id) or 0)]
    eventually(lambda: float(client.redis.zscore(k.workers, worker_id) or 0) > beats[0],
               what="the worker still beats")
    assert [w.id for w in client.workers() if w.alive] == [worker_id]
    done = wait_ended(client, [running.id])[running.id]
    assert done.state is JobState.COMPLETED and done.attempts == 1, "it ran exactly once"
    assert worker.alive()
    assert "Traceback" not in worker.stderr()


def test_a_second_worker_with_the_same_id_refuses_to_start(procs: Procs,
                                                           client: Client) -> None:
    same = {"QUEUECTL_WORKER_ID": "twin", "QUEUECTL_WORKER_TTL": "2"}
    first = procs.worker(same)
    assert wait_registered(client, first) == "twin"
    job = client.enqueue("sleep 4")
    eventually(lambda: client.get(job.id).state is JobState.PROCESSING, what="it runs")

    second = procs.worker(same)
    # It waits one TTL for the id to be released (a restarted pod), then gives up.
    assert second.wait_exit(timeout=30) == EXIT_CONFLICT
    line = one_error_line(second.stderr())
    assert "twin is held by a live process" in line and f"pid {first.pid}" in line
    done = wait_ended(client, [job.id])[job.id]
    assert (done.state, done.attempts, done.interrupted) == (JobState.COMPLETED, 1, 0)
    assert first.alive()


def test_a_restarted_worker_takes_its_id_back_once_the_old_status_expires(
        procs: Procs, client: Client) -> None:
    same = {"QUEUECTL_WORKER_ID": "phoenix", "QUEUECTL_WORKER_TTL": "2"}
    first = procs.worker(same)
    wait_registered(client, first)
    first.signal(signal.SIGKILL)  # killed: its status hash lives on for up to one TTL
    first.wait_exit()
    second = procs.worker(same)
    eventually(lambda: client.redis.hget(client.keys.worker("phoenix"), "pid")
               == str(second.pid).encode(), what="the new process holds the id")
    job = client.enqueue("true")
    assert wait_ended(client, [job.id])[job.id].state is JobState.COMPLETED
    assert second.alive()
