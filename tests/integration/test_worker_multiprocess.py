"""``QUEUECTL_WORKER_PROCESSES``: one parent supervising worker processes, each a whole
worker with its own id (queuectl.worker.processes). Real processes, signals and Redis."""

from __future__ import annotations

import os
import re
import signal

from queuectl.core.client import Client
from queuectl.core.models import Job, JobState

from .procs import Proc, Procs, eventually, process_gone, wait_ended

MULTI = {"QUEUECTL_WORKER_PROCESSES": "2", "QUEUECTL_CONCURRENCY": "2",
         "QUEUECTL_IDLE_WAIT": "0.5"}


def children(client: Client, parent: Proc) -> dict[str, int]:
    """worker id -> pid of the parent's two worker processes, once both are registered."""
    def registered() -> dict[str, int]:
        assert parent.alive(), f"{parent.name} exited early:\n{parent.stderr()[-2000:]}"
        found = {w.id: int(w.fields["pid"]) for w in client.workers()
                 if w.alive and w.fields.get("pid", "").isdigit()}
        return found if len(found) == 2 else {}

    return eventually(registered, what="two worker processes registered")


def found(client: Client, ids: list[str]) -> list[Job]:
    return [job for job in map(client.find, ids) if job is not None]


def test_two_processes_share_the_queue_each_under_its_own_id(procs: Procs,
                                                             client: Client) -> None:
    parent = procs.worker(MULTI)
    ids = children(client, parent)
    assert parent.pid not in ids.values()
    # Not in the parent's process group: Ctrl-C or `tini -g` would signal them twice.
    assert os.getpgid(parent.pid) not in {os.getpgid(pid) for pid in ids.values()}
    # Each process has 2 threads: 8 one-second jobs cannot all run in one of them in time
    # to leave the other idle, so both take some.
    jobs = [client.enqueue("sleep 1").id for _ in range(8)]
    done = wait_ended(client, jobs, timeout=60)
    assert {j.state for j in done.values()} == {JobState.COMPLETED}
    assert {j.worker for j in done.values()} == set(ids)
    parent.signal(signal.SIGTERM)
    assert parent.wait_exit(30) == 0, parent.stderr()
    assert all(process_gone(pid) for pid in ids.values())


def test_sigterm_drains_every_process(procs: Procs, client: Client) -> None:
    parent = procs.worker({**MULTI, "QUEUECTL_SHUTDOWN_GRACE": "30"})
    ids = children(client, parent)
    jobs = [client.enqueue("sleep 2").id for _ in range(4)]
    eventually(lambda: len({j.worker for j in found(client, jobs)
                            if j.state is JobState.PROCESSING}) == 2,
               what="both processes running jobs")
    parent.signal(signal.SIGTERM)
    assert parent.wait_exit(60) == 0, parent.stderr()
    # Drained, not stopped: every job that had started finished as it would have.
    states = {j.id: j.state for j in found(client, jobs)}
    assert JobState.COMPLETED in states.values()
    assert set(states.values()) <= {JobState.COMPLETED, JobState.PENDING}, states
    assert all(process_gone(pid) for pid in ids.values())


def test_a_killed_process_stops_the_others_and_the_parent_says_which(
        procs: Procs, client: Client) -> None:
    parent = procs.worker(MULTI)
    ids = children(client, parent)
    victim, survivor = sorted(ids.values())
    os.kill(victim, signal.SIGKILL)
    assert parent.wait_exit(60) == 1
    errors = [line for line in parent.stderr().splitlines() if ": error: " in line]
    assert len(errors) == 1, parent.stderr()
    assert re.fullmatch(rf"queuectl-worker: error: worker process [01] \(pid {victim}\) was "
                        r"killed by SIGKILL; stopped the other worker processes", errors[0])
    assert eventually(lambda: process_gone(survivor), what="the other process stopped")
