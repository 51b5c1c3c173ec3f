"""A real worker process ends each job's processes with the job, and survives bad setups.

The executor's own tier (tests/worker) covers the cases one by one; these check
the wiring in a running ``queuectl-worker``: it is the subreaper, it picks (or
is told not to use) cgroups, and the pool reports what the executor classified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState

from .procs import Procs, eventually, wait_ended, wait_registered


def survivors(job_ids: list[str]) -> dict[str, list[int]]:
    """Live processes of these jobs (found by QUEUECTL_JOB_ID in their environment)."""
    needles = {f"QUEUECTL_JOB_ID={i}".encode(): i for i in job_ids}
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_bytes().rpartition(b")")[2].split()[0]
        except OSError:
            continue
        for var in environ:
            if var in needles and state != b"Z":
                found.setdefault(needles[var], []).append(int(entry))
    return found


@pytest.mark.parametrize("cgroup", ["auto", "off"])
def test_leftovers_and_escapees_end_with_their_jobs(
        procs: Procs, client: Client, cgroup: str) -> None:
    worker = procs.worker({"QUEUECTL_JOB_CGROUP": cgroup, "QUEUECTL_KILL_GRACE": "0.5",
                           "QUEUECTL_CONCURRENCY": "4"})
    wait_registered(client, worker)
    completed = [client.enqueue(c).id for c in (
        "(sleep 301 &)", "nohup sleep 302 >/dev/null 2>&1 &", "setsid sleep 303 &",
        "i=0; while [ $i -lt 200 ]; do sleep 304 & i=$((i+1)); done")]
    timed_out = client.enqueue("setsid sleep 305 & sleep 100", timeout=2, max_retries=0).id

    jobs = wait_ended(client, [*completed, timed_out])
    assert {jobs[i].state for i in completed} == {JobState.COMPLETED}
    assert jobs[timed_out].state is JobState.DEAD
    eventually(lambda: not survivors([*completed, timed_out]), 10,
               what="no process of any job left")
    if cgroup == "off":
        assert "job cgroups off: QUEUECTL_JOB_CGROUP=off" in worker.stderr()
    else:
        print([ln for ln in worker.stderr().splitlines() if "job cgroups" in ln])


def test_a_planted_symlink_fails_the_run_and_the_worker_lives_on(
        procs: Procs, client: Client, env: dict[str, str], tmp_path: Path) -> None:
    log_dir = Path(env["QUEUECTL_LOG_DIR"])
    log_dir.mkdir(parents=True)
    outside = tmp_path / "precious"
    outside.write_bytes(b"keep\n")
    (log_dir / "planted.log").symlink_to(outside)
    worker = procs.worker()
    job = client.enqueue("echo pwned", job_id="planted", max_retries=0)
    after = client.enqueue("echo after")

    jobs = wait_ended(client, [job.id, after.id])
    assert jobs[job.id].state is JobState.DEAD
    assert jobs[job.id].last_error == (f"log file {log_dir}/planted.log is a symbolic link; "
                                       "refusing to follow it; not written")
    assert outside.read_bytes() == b"keep\n"
    assert jobs[after.id].state is JobState.COMPLETED
    assert worker.alive()
    assert "Traceback" not in worker.stderr()


def test_a_host_failure_hands_the_job_back_without_spending_a_retry(
        procs: Procs, client: Client, env: dict[str, str]) -> None:
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "1"})
    wait_registered(client, worker)
    log_dir = Path(env["QUEUECTL_LOG_DIR"])
    shutil.rmtree(log_dir)
    log_dir.write_bytes(b"a file where LOG_DIR should be")  # cannot be re-created
    job = client.enqueue("echo finally", max_retries=0)

    eventually(lambda: client.get(job.id).interrupted >= 1, what="the run was handed back")
    assert client.get(job.id).state in (JobState.PENDING, JobState.PROCESSING)
    log_dir.unlink()
    log_dir.mkdir()

    done = wait_ended(client, [job.id])[job.id]
    assert done.state is JobState.COMPLETED, "no retry (max_retries=0) was spent"
    assert (log_dir / f"{job.id}.log").read_bytes().endswith(b"finally\n")
    assert "cannot be re-created: File exists" in worker.stderr()
    assert "Traceback" not in worker.stderr()
