"""Fixtures of the worker tier: a process control (with and without cgroups), LOG_DIR."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from queuectl.core.settings import JobCgroup, LogTarget
from queuectl.worker.executor import ExecConfig
from queuectl.worker.logdir import LogDir
from queuectl.worker.reaper import PR_SET_CHILD_SUBREAPER
from queuectl.worker.remains import ProcessControl

KILL_GRACE = 0.5


@pytest.fixture(autouse=True)
def _unset_subreaper() -> Iterator[None]:
    """The tests make this process a subreaper (as the worker is); other tiers expect not."""
    yield
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _control(mode: str) -> Iterator[ProcessControl]:
    control = ProcessControl(KILL_GRACE)
    why = control.setup(JobCgroup.AUTO if mode == "cgroup" else JobCgroup.OFF)
    if mode == "cgroup" and control.cgroups is None:
        pytest.skip(f"cgroup mode not available here ({why})")
    yield control
    control.reap()
    control.close()
    if control.cgroups is not None:
        assert not control.cgroups.base.exists(), "the worker's cgroup subtree is removed"


@pytest.fixture(params=["off", "cgroup"])
def control(request: pytest.FixtureRequest) -> Iterator[ProcessControl]:
    """Both containments: process group + adopted orphans, and a cgroup per run."""
    yield from _control(request.param)


@pytest.fixture
def plain_control() -> Iterator[ProcessControl]:
    """No cgroups (QUEUECTL_JOB_CGROUP=off): what a plain container gets."""
    yield from _control("off")


@pytest.fixture
def cgroup_control() -> Iterator[ProcessControl]:
    """Cgroup mode only (skipped, naming why, where the host has no writable cgroup v2)."""
    yield from _control("cgroup")


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "logs"


@pytest.fixture
def logs(log_dir: Path) -> Iterator[LogDir]:
    opened = LogDir(log_dir)
    opened.open()
    yield opened
    opened.close()


def make_cfg(logs: LogDir | None, control: ProcessControl,
             target: LogTarget = LogTarget.FILE, cap: int = 4096) -> ExecConfig:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    return ExecConfig("w-test", logs, target, cap, control, env)


@pytest.fixture
def cfg(logs: LogDir, control: ProcessControl) -> ExecConfig:
    return make_cfg(logs, control)


@pytest.fixture
def cgroup_cfg(logs: LogDir, cgroup_control: ProcessControl) -> ExecConfig:
    return make_cfg(logs, cgroup_control)


@pytest.fixture
def plain_cfg(logs: LogDir, plain_control: ProcessControl) -> ExecConfig:
    return make_cfg(logs, plain_control)


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
