"""Running one job's command: spawn, watch, time out, ship output, report the outcome."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from queuectl.core.errors import LeaseLostError
from queuectl.core.models import iso
from queuectl.core.settings import LogTarget
from queuectl.core.store import Fetched
from queuectl.worker.jobenv import default_base_env, job_env
from queuectl.worker.output import Capture

SHELL = "/bin/sh"
# How often a running job's output is shipped to Redis; each shipment also
# checks the lease, which is how a cancel or a takeover reaches the process.
SHIP_INTERVAL = 1.0


class Ending(Enum):
    EXITED = "exited"          # the command exited by itself (any code)
    TIMED_OUT = "timed_out"    # we killed it at its timeout
    NOT_STARTED = "not_started"
    LEASE_LOST = "lease_lost"  # cancelled or taken over: we stopped it, must not report
    INTERRUPTED = "interrupted"  # the worker is shutting down hard: hand the job back


@dataclass(slots=True)
class RunResult:
    ending: Ending
    exit_code: int | None
    error: str
    chunk: bytes
    produced: int
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.ending is Ending.EXITED and self.exit_code == 0


@dataclass(frozen=True, slots=True)
class ExecConfig:
    worker_id: str
    log_dir: Path
    log_target: LogTarget
    cap: int
    kill_grace: float
    # Filtered once (jobenv.py): the settings' allow/deny lists, else the default list.
    base_env: dict[str, str] = field(default_factory=default_base_env)


def kill_group(pgid: int, kill_grace: float, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole process group, then SIGKILL it if the leader is still there."""
    for sig, wait in ((signal.SIGTERM, kill_grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; children that ignored SIGTERM may not be. Kill the rest.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        return


def _describe(code: int) -> tuple[int, str]:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else ""
        return 128 - code, f"killed by signal {name or -code}"
    return code, f"exit code {code}"


class Execution:
    """One run of one job; ``interrupt()`` may be called from another thread."""

    def __init__(self, job: Fetched, cfg: ExecConfig,
                 ship: Callable[[Fetched, bytes, int], None]) -> None:
        self.job = job
        self.cfg = cfg
        self._ship = ship
        self._proc: subprocess.Popen[bytes] | None = None
        self._interrupted = False

    def interrupt(self) -> None:
        """Stop the job now because the worker is shutting down; it will be handed back."""
        self._interrupted = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)

    def run(self) -> RunResult:
        job, cfg = self.job, self.cfg
        header = (f"--- attempt {job.attempts} of job {job.id} on {cfg.worker_id} "
                  f"at {iso(time.time())} ---\n").encode()
        started = time.monotonic()
        capture = Capture(job.id, header, cfg.log_target, cfg.log_dir, cfg.cap)
        try:
            own = json.loads(job.env) if job.env else None
            env = job_env(cfg.base_env, job.id, job.queue, job.attempts, own)
            try:
                # start_new_session (not a preexec_fn) keeps vfork, and puts the
                # whole tree in one group that a timeout or cancel can kill.
                self._proc = proc = subprocess.Popen(
                    [SHELL, "-c", job.command], stdin=subprocess.DEVNULL,
                    stdout=capture.child_fd, stderr=capture.child_fd,
                    start_new_session=True, env=env,
                )
            except OSError as exc:
                chunk, produced = capture.take()
                return RunResult(Ending.NOT_STARTED, None, f"cannot start: {exc.strerror}",
                                 chunk, produced, time.monotonic() - started)
            capture.spawned()
            ending = self._watch(proc, capture, started)
            chunk, produced = capture.take()
        finally:
            capture.close()
        elapsed = time.monotonic() - started
        if ending is Ending.TIMED_OUT:
            return RunResult(ending, None, f"timed out after {job.timeout:g}s",
                             chunk, produced, elapsed)
        if ending is not Ending.EXITED:
            return RunResult(ending, None, ending.value, chunk, produced, elapsed)
        code, error = _describe(proc.returncode)
        if code != 0:
            detail = capture.last_line(chunk)
            error = f"{error}: {detail}" if detail else error
        return RunResult(ending, code, "" if code == 0 else error, chunk, produced, elapsed)

    def _watch(self, proc: subprocess.Popen[bytes], capture: Capture, started: float) -> Ending:
        watch = _Watch(proc, capture, started, self.job.timeout)
        try:
            while True:
                watch.wait()
                if proc.poll() is not None:
                    watch.drain()
                    # A job that finished cleanly as we interrupted it keeps its success.
                    if self._interrupted and proc.returncode != 0:
                        return Ending.INTERRUPTED
                    return Ending.EXITED
                if self._interrupted:
                    kill_group(proc.pid, self.cfg.kill_grace, proc)
                    return Ending.INTERRUPTED
                now = time.monotonic()
                if watch.deadline is not None and now >= watch.deadline:
                    kill_group(proc.pid, self.cfg.kill_grace, proc)
                    watch.drain()
                    return Ending.TIMED_OUT
                if now >= watch.next_ship:
                    watch.next_ship = now + SHIP_INTERVAL
                    watch.drain()
                    chunk, produced = capture.take()
                    try:
                        self._ship(self.job, chunk, produced)
                    except LeaseLostError:
                        kill_group(proc.pid, self.cfg.kill_grace, proc)
                        return Ending.LEASE_LOST
        finally:
            watch.close()


class _Watch:
    """Sleeps until the process exits, output arrives, the deadline or the next shipment.

    A pidfd makes the exit itself wake us (no polling sleeps, so a finished job
    is reported at once); without one, Popen.wait's own polling is used.
    """

    def __init__(self, proc: subprocess.Popen[bytes], capture: Capture, started: float,
                 timeout: float | None) -> None:
        self.proc = proc
        self.capture = capture
        self.deadline = started + timeout if timeout else None
        self.next_ship = started + SHIP_INTERVAL
        self.pipe_open = capture.read_fd is not None
        self.poller = select.poll()
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except OSError:
            self.pidfd = None
        if capture.read_fd is not None:
            self.poller.register(capture.read_fd, select.POLLIN)

    def wait(self) -> None:
        until = min(self.next_ship, self.deadline) if self.deadline else self.next_ship
        wait = max(0.0, until - time.monotonic())
        if self.pidfd is not None:
            self.poller.poll(wait * 1000)
        elif self.pipe_open:
            self.poller.poll(min(wait, 0.05) * 1000)
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait)
        self.drain()

    def drain(self) -> None:
        """Take what the pipe holds; a background child may keep it open after the exit."""
        if self.pipe_open and self.capture.pump():
            assert self.capture.read_fd is not None
            self.poller.unregister(self.capture.read_fd)
            self.pipe_open = False

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
