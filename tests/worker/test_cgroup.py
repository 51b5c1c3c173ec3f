"""Cgroup mode where the host allows it, and what holds without it.

These need a writable cgroup v2 (this machine: /sys/fs/cgroup/unified; a pod
with a delegated cgroup: /sys/fs/cgroup) and are skipped elsewhere, naming why.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from queuectl.core.settings import JobCgroup, Settings
from queuectl.worker.cgroup import JobCgroups, own_cgroup_dir
from queuectl.worker.executor import ExecConfig
from queuectl.worker.remains import SHELL, ProcessControl
from tests.integration.procs import eventually

from .helpers import alive, execute, new_id, none_left, pid_from, zombie_children


def test_the_setting_defaults_to_auto_and_accepts_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUECTL_JOB_CGROUP", raising=False)
    assert Settings().job_cgroup is JobCgroup.AUTO
    monkeypatch.setenv("QUEUECTL_JOB_CGROUP", "off")
    assert Settings().job_cgroup is JobCgroup.OFF


def test_each_run_has_a_cgroup_with_no_live_member_kept_for_the_next(cfg: ExecConfig) -> None:
    cgroups = cfg.procs.cgroups
    if cgroups is None:
        result = execute(cfg, "cat /proc/self/cgroup")
        assert b"queuectl-" not in result.chunk, "off: the job stays in the worker's cgroup"
        return
    seen = []
    for _ in range(3):
        # The background sleep outlives the shell: the run's end kills it, so the
        # cgroup the next run is given has no live member left.
        result = execute(cfg, "sleep 300 & cat /proc/self/cgroup")
        line = next(ln for ln in result.chunk.splitlines() if ln.startswith(b"0::"))
        seen.append(line)
        assert f"/{cgroups.base.name}/".encode() in line
        kept = [p for p in cgroups.base.iterdir() if p.is_dir()]
        assert len(kept) == 1, "one run at a time: one cgroup, kept for the next run"
        assert b"populated 0" in (kept[0] / "cgroup.events").read_bytes()
    assert len(set(seen)) == 1, "the empty cgroup was reused"
    cgroups.close()
    assert not cgroups.base.exists(), "closing removes the kept cgroups and the subtree"


def test_a_process_that_drops_its_environment_and_session(
        control: ProcessControl, cfg: ExecConfig, tmp_path: Path) -> None:
    """With cgroups it is ended with its job; without, nothing marks it as the job's."""
    pidfile = tmp_path / "escapee.pid"
    result = execute(cfg, f"setsid env -i sleep 309 & echo $! > {pidfile}; sleep 0.5")
    assert result.succeeded
    escapee = pid_from(pidfile)
    try:
        if control.cgroups is not None:
            eventually(lambda: not alive(escapee), what="the escapee ended with its job")
        else:
            assert alive(escapee), "documented limit of the fallback (README)"
    finally:
        if alive(escapee):
            os.kill(escapee, signal.SIGKILL)
    eventually(lambda: _reaped(control), what="reaped")


def test_a_job_cgroup_removed_under_the_worker_is_made_again(cgroup_cfg: ExecConfig) -> None:
    cgroups = cgroup_cfg.procs.cgroups
    assert cgroups is not None
    os.rmdir(cgroups.base)
    job_id = new_id()
    result = execute(cgroup_cfg, "(sleep 300 &); cat /proc/self/cgroup", job_id=job_id)
    assert result.succeeded
    assert f"/{cgroups.base.name}/".encode() in result.chunk
    none_left(job_id)


def test_detection_names_the_hierarchy_and_removes_stale_subtrees() -> None:
    parent = own_cgroup_dir()
    if parent is None:
        pytest.skip("no cgroup v2 hierarchy for this process")
    assert (parent / "cgroup.procs").exists()
    # A subtree left by a worker that was SIGKILLed: its pid is gone.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = parent / f"queuectl-{gone.pid}-abcdef"
    try:
        stale.mkdir()
        (stale / "run1").mkdir()
    except OSError as exc:
        pytest.skip(f"{parent} is not writable here: {exc.strerror}")
    cgroups, why = JobCgroups.detect(SHELL)
    try:
        assert cgroups is not None, why
        assert str(parent) in why
        assert not stale.exists(), "the dead worker's empty subtree was removed"
    finally:
        if cgroups is not None:
            cgroups.close()
        for path in (stale / "run1", stale):
            if path.exists():
                path.rmdir()


def _reaped(control: ProcessControl) -> bool:
    control.reap()
    return not zombie_children()
