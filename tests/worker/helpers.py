"""Running one job in-process, and finding what is left of it in /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from queuectl.core.store import Fetched
from queuectl.worker.executor import ExecConfig, Execution, RunResult
from tests.integration.procs import eventually

T = TypeVar("T")
Ship = Callable[[Fetched, bytes, int], None]


def no_ship(job: Fetched, chunk: bytes, produced: int) -> None:
    """The pool's ship callback, minus Redis."""


def new_id() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def fetched(command: str, *, job_id: str | None = None, timeout: float | None = None,
            attempts: int = 1) -> Fetched:
    return Fetched(job_id or new_id(), 1, command, timeout, attempts, "default", "")


def execute(cfg: ExecConfig, command: str, *, job_id: str | None = None,
            timeout: float | None = None, ship: Ship = no_ship) -> RunResult:
    return Execution(fetched(command, job_id=job_id, timeout=timeout), cfg, ship).run()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat_fields(pid: int) -> list[bytes]:
    return _read(f"/proc/{pid}/stat").rpartition(b")")[2].split()


def survivors(job_id: str) -> list[int]:
    """Live processes started by the job (its QUEUECTL_JOB_ID in their environment)."""
    needle = f"QUEUECTL_JOB_ID={job_id}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and needle in _read(f"/proc/{entry}/environ").split(b"\0"):
            fields = _stat_fields(int(entry))
            if fields and fields[0] != b"Z":
                found.append(int(entry))
    return found


def none_left(job_id: str, timeout: float = 10.0) -> None:
    """Every process of the job is gone (killing any that are not, so no test leaks them)."""
    deadline = time.monotonic() + timeout
    while left := survivors(job_id):
        if time.monotonic() >= deadline:
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"{len(left)} process(es) of {job_id} survived: {left[:10]}")
        time.sleep(0.05)


def zombie_children() -> list[int]:
    """Dead children of this process that nobody reaped."""
    me = str(os.getpid()).encode()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if len(fields) > 1 and fields[0] == b"Z" and fields[1] == me:
                out.append(int(entry))
    return out


def pid_from(path: Path) -> int:
    """The pid a job wrote to ``path``, once it is there."""
    text = eventually(lambda: path.exists() and path.read_text().strip(), what=f"{path} written")
    return int(text)


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != b"Z"
