"""A job's processes end with the job: leftovers, escapees, fork bombs, and nobody else's."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from queuectl.worker.executor import ExecConfig, Execution, RunResult
from queuectl.worker.outcome import Ending
from tests.integration.procs import eventually

from .helpers import alive, execute, fetched, new_id, no_ship, none_left, pid_from, zombie_children

LEFTOVERS = {
    "subshell": "(sleep 301 &)",
    "nohup": "nohup sleep 302 >/dev/null 2>&1 &",
    "setsid": "setsid sleep 303 &",
    "setsid-tree": "setsid sh -c 'sleep 304 & sleep 304 & wait' &",
    "own-group": "set -m; sleep 305 &",
    "double-fork-daemon": "(setsid sh -c '(sleep 306 &)' &)",
    "ignores-sigterm": "(trap '' TERM; sleep 307) &",
    "stops-itself": "sh -c 'kill -STOP $$; sleep 308' &",
}


@pytest.mark.parametrize("command", LEFTOVERS.values(), ids=LEFTOVERS.keys())
def test_what_a_job_leaves_running_is_killed_when_it_exits(
        cfg: ExecConfig, command: str) -> None:
    job_id = new_id()
    result = execute(cfg, f"{command}\nsleep 0.2; echo done", job_id=job_id)
    assert result.succeeded, result.error
    assert result.chunk.endswith(b"done\n")
    none_left(job_id)


@pytest.mark.parametrize("ending", ["exits", "times-out"])
def test_a_setsid_child_does_not_outlive_its_job(cfg: ExecConfig, ending: str) -> None:
    job_id = new_id()
    if ending == "exits":
        result = execute(cfg, "setsid sleep 305 & exit 0", job_id=job_id)
        assert result.succeeded
    else:
        result = execute(cfg, "setsid sleep 305 & sleep 100", job_id=job_id, timeout=1)
        assert result.ending is Ending.TIMED_OUT
    none_left(job_id)


def test_a_bounded_fork_bomb_leaves_no_survivor(cfg: ExecConfig) -> None:
    job_id = new_id()
    # 200 background sleeps, plus 20 escapees in their own sessions that keep forking
    # while they are being killed (each stops after 30 children: bounded on purpose).
    command = ("i=0; while [ $i -lt 200 ]; do sleep 300 & i=$((i+1)); done; "
               "j=0; while [ $j -lt 20 ]; do "
               "setsid sh -c 'k=0; while [ $k -lt 30 ]; do sleep 300 & k=$((k+1)); done; wait' & "
               "j=$((j+1)); done; sleep 0.5; exit 1")
    result = execute(cfg, command, job_id=job_id)
    assert result.ending is Ending.EXITED and result.exit_code == 1
    none_left(job_id, timeout=15)


def test_a_timed_out_fork_bomb_leaves_no_survivor(cfg: ExecConfig) -> None:
    job_id = new_id()
    command = ("bomb() { [ $1 -gt 0 ] && { bomb $(($1 - 1)) & bomb $(($1 - 1)) & }; "
               "sleep 300; }; bomb 7")  # 2^8 - 1 = 255 shells, each sleeping
    result = execute(cfg, command, job_id=job_id, timeout=1)
    assert result.ending is Ending.TIMED_OUT
    none_left(job_id, timeout=15)


def test_ending_one_job_never_touches_another_jobs_processes(
        cfg: ExecConfig, tmp_path: Path) -> None:
    """Both jobs' orphans hang below the same worker; each job ends only its own."""
    long = fetched(f"(sleep 300 & echo $! > {tmp_path}/long.pid); "
                   f"setsid sleep 300 & echo $! > {tmp_path}/long-setsid.pid; sleep 300")
    execution = Execution(long, cfg, no_ship)
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(execution.run()))
    thread.start()
    try:
        orphan = pid_from(tmp_path / "long.pid")
        escapee = pid_from(tmp_path / "long-setsid.pid")
        eventually(lambda: os.getpid() == _ppid(orphan), what="the long job's orphan adopted")
        for _ in range(5):
            short = new_id()
            result = execute(cfg, "(sleep 301 &); setsid sleep 301 & exit 0", job_id=short)
            assert result.succeeded
            none_left(short)
        assert alive(orphan) and alive(escapee), "the running job's processes were touched"
    finally:
        execution.interrupt()
        thread.join(30)
    assert results[0].ending is Ending.INTERRUPTED
    none_left(long.id)


def test_dead_orphans_are_reaped_and_no_zombie_piles_up(cfg: ExecConfig) -> None:
    for _ in range(20):
        # The background child exits by itself shortly after the job: nothing is left to
        # kill, but its zombie is ours (as subreaper) to reap.
        assert execute(cfg, "(sleep 0.05 &); exit 0").succeeded
    cfg.procs.reap()
    eventually(lambda: _reaped_all(cfg), what="no zombie children")


def test_foreign_orphans_are_reaped_but_never_signalled(cfg: ExecConfig, tmp_path: Path) -> None:
    """An adopted process with no run id (a daemon the worker's own code started) is left."""
    import subprocess

    pidfile = tmp_path / "daemon.pid"
    # Double fork: the daemon is adopted by us, and carries no QUEUECTL_JOB_RUN_ID.
    subprocess.run(["sh", "-c", f"(sleep 300 & echo $! > {pidfile})"], check=True)
    daemon = pid_from(pidfile)
    try:
        assert os.getpid() == _ppid(daemon)
        assert execute(cfg, "(sleep 301 &); exit 0").succeeded
        cfg.procs.reap()
        assert alive(daemon)
    finally:
        os.kill(daemon, signal.SIGKILL)
    eventually(lambda: _reaped_all(cfg), what="the daemon's zombie reaped")


def _reaped_all(cfg: ExecConfig) -> bool:
    cfg.procs.reap()
    return not zombie_children()


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rpartition(b")")[2].split()[1])
