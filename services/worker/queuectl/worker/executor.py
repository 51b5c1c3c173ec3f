"""Running one job's command: spawn, watch, time out, ship output, report the outcome.

``Execution.run`` never raises for a run that cannot be set up or started: the
failure is classified (``outcome``) and returned, so a job thread never dies of
a full disk or a planted log file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from queuectl.core.errors import LeaseLostError
from queuectl.core.models import iso
from queuectl.core.settings import LogTarget
from queuectl.core.store import Fetched
from queuectl.worker.jobenv import default_base_env, job_env
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import (
    Ending,
    RunResult,
    SetupError,
    describe,
    environment_or_job,
    spawn_error,
)
from queuectl.worker.output import Capture
from queuectl.worker.remains import SHELL, ProcessControl, Run

__all__ = ["SHELL", "Ending", "ExecConfig", "Execution", "RunResult"]

log = logging.getLogger("queuectl.worker")

# How often a running job's output is shipped to Redis; each shipment also
# checks the lease, which is how a cancel or a takeover reaches the process.
SHIP_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class ExecConfig:
    worker_id: str
    logs: LogDir | None  # None when nothing is written to files (LOG_TARGET=stdout)
    log_target: LogTarget
    cap: int
    procs: ProcessControl
    # Filtered once (jobenv.py): the settings' allow/deny lists, else the default list.
    base_env: dict[str, str] = field(default_factory=default_base_env)
    # Called whenever a run's watch loop wakes (at least once a second): liveness.
    tick: Callable[[], None] = lambda: None


def _attempt(job: Fetched) -> str:
    """``attempt 2``, or ``attempt 1 (run 4, after a retry from the DLQ or quarantine)``."""
    # A DLQ or quarantine retry restarts attempts at 0, so three runs of a job revived
    # twice would all read "attempt 1". Every fetch bumps the lease and only enqueue
    # resets it, so the lease numbers the runs since the job was enqueued (a cancel
    # bumps it too, but a cancelled job only runs again when replaced, which resets it).
    if job.lease > job.attempts:
        return (f"attempt {job.attempts} (run {job.lease}, "
                "after a retry from the DLQ or quarantine)")
    return f"attempt {job.attempts}"


def _describe(code: int) -> tuple[int, str]:
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else ""
        return 128 - code, f"killed by signal {name or -code}"
    return code, f"exit code {code}"


class Execution:
    """One run of one job; ``interrupt()`` may be called from another thread."""

    def __init__(self, job: Fetched, cfg: ExecConfig,
                 ship: Callable[[Fetched, bytes, int], None],
                 trace_env: Mapping[str, str] | None = None) -> None:
        self.job = job
        self.cfg = cfg
        self._trace_env = trace_env  # TRACEPARENT/TRACESTATE of this run (worker/spans.py)
        self._ship = ship
        self._interrupted = False
        self._lock = threading.Lock()
        self._wake: int | None = None
        self._spawned: float | None = None

    def interrupt(self) -> None:
        """Stop the job now because the worker is shutting down; it will be handed back."""
        # Only the job's own thread signals its processes (it alone knows when the main
        # process is reaped and its group id may be reused); we just wake it.
        with self._lock:
            self._interrupted = True
            if self._wake is not None:
                os.eventfd_write(self._wake, 1)

    def run(self) -> RunResult:
        job, cfg = self.job, self.cfg
        header = (f"--- {_attempt(job)} of job {job.id} on {cfg.worker_id} "
                  f"at {iso(time.time())} ---\n").encode()
        started = time.monotonic()
        try:
            capture = Capture(job.id, header, cfg.log_target, cfg.logs, cfg.cap)
        except SetupError as exc:
            return _not_run(exc, b"", 0, started)
        try:
            return self._run(capture, started)
        finally:
            capture.close()

    def _run(self, capture: Capture, started: float) -> RunResult:
        run = self.cfg.procs.new_run(self.job.id)
        try:
            proc = self._start(run, capture)
        except SetupError as exc:
            run.close()
            self._close_wake()
            return _not_run(exc, *capture.take(), started)
        ending = self._supervise(proc, run, capture, started)
        return self._result(proc, ending, capture, started)

    def _start(self, run: Run, capture: Capture) -> subprocess.Popen[bytes]:
        """Spawn the job's main process; SetupError when it cannot be."""
        job = self.job
        own = json.loads(job.env) if job.env else None
        env = {**job_env(self.cfg.base_env, job.id, job.queue, job.attempts, own,
                         self._trace_env), **run.env()}

        def start(argv: list[str]) -> subprocess.Popen[bytes]:
            # spawned_at is the moment the spawn begins, as the peers in benchmarks/
            # measure it: the fork and exec themselves are the command's start-up.
            self._spawned = time.monotonic()
            # start_new_session (not a preexec_fn) keeps vfork, and puts the
            # whole tree in one group that a timeout or cancel can kill.
            return subprocess.Popen(argv, stdin=self.cfg.procs.stdin, stdout=capture.child_fd,
                                    stderr=capture.child_fd, start_new_session=True, env=env)

        try:
            with self._lock:
                self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                if self._interrupted:
                    os.eventfd_write(self._wake, 1)
        except OSError as exc:
            raise SetupError(environment_or_job(exc),
                             f"cannot create an eventfd: {describe(exc)}") from None
        try:
            proc = run.spawn(start, job.command)
        except (OSError, ValueError) as exc:
            raise spawn_error(exc, SHELL) from None
        return proc

    def _supervise(self, proc: subprocess.Popen[bytes], run: Run, capture: Capture,
                   started: float) -> Ending:
        """Watch the run to its end, then end whatever is left of it, and reap it."""
        watch: _Watch | None = None
        try:
            watch = _Watch(proc, capture, started, self.job.timeout, self._wake)
            capture.spawned()
            return self._watch(run, watch, capture)
        finally:
            try:
                run.end()  # whatever is left of the job, its main process included
                if watch is not None:
                    watch.drain()  # the last output of what was just ended
            finally:
                if watch is not None:
                    watch.close()
                self._close_wake()
                if run.main_exited():
                    proc.wait()
                else:  # it survived SIGKILL (stuck on a hung mount): reaped when it dies
                    log.warning("job %s: its main process %d survived SIGKILL", self.job.id,
                                proc.pid)
                run.close()

    def _result(self, proc: subprocess.Popen[bytes], ending: Ending, capture: Capture,
                started: float) -> RunResult:
        chunk, produced = capture.take()
        elapsed = time.monotonic() - started
        # A job that finished cleanly as we interrupted it keeps its success.
        if ending is Ending.EXITED and self._interrupted and proc.returncode != 0:
            ending = Ending.INTERRUPTED
        spawned = self._spawned
        if ending is Ending.TIMED_OUT:
            return RunResult(ending, None, f"timed out after {self.job.timeout:g}s",
                             chunk, produced, elapsed, spawned)
        if ending is not Ending.EXITED:
            return RunResult(ending, None, ending.value, chunk, produced, elapsed, spawned)
        code, error = _describe(proc.returncode)
        if code != 0:
            detail = capture.last_line(chunk)
            error = f"{error}: {detail}" if detail else error
        return RunResult(ending, code, "" if code == 0 else error, chunk, produced, elapsed,
                         spawned)

    def _close_wake(self) -> None:
        with self._lock:
            if self._wake is not None:
                os.close(self._wake)
                self._wake = None

    def _watch(self, run: Run, watch: _Watch, capture: Capture) -> Ending:
        while True:
            watch.wait()
            self.cfg.tick()
            if run.main_exited():
                watch.drain()
                return Ending.EXITED
            if self._interrupted:
                return Ending.INTERRUPTED
            now = time.monotonic()
            if watch.deadline is not None and now >= watch.deadline:
                return Ending.TIMED_OUT
            if now >= watch.next_ship:
                watch.next_ship = now + SHIP_INTERVAL
                watch.drain()
                chunk, produced = capture.take()
                try:
                    self._ship(self.job, chunk, produced)
                except LeaseLostError:
                    return Ending.LEASE_LOST


def _not_run(exc: SetupError, chunk: bytes, produced: int, started: float) -> RunResult:
    return RunResult(exc.ending, None, str(exc), chunk, produced, time.monotonic() - started)


class _Watch:
    """Sleeps until the process exits, output arrives, an interrupt, the deadline or the
    next shipment.

    A pidfd makes the exit itself wake us (no polling sleeps, so a finished job
    is reported at once); without one, short sleeps are used.
    """

    def __init__(self, proc: subprocess.Popen[bytes], capture: Capture, started: float,
                 timeout: float | None, wake: int | None) -> None:
        self.capture = capture
        self.deadline = started + timeout if timeout else None
        self.next_ship = started + SHIP_INTERVAL
        self.pipe_open = True  # until its end of file (every run's output is piped)
        self.poller = select.poll()
        try:
            self.pidfd: int | None = os.pidfd_open(proc.pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except OSError:
            self.pidfd = None
        if wake is not None:
            self.poller.register(wake, select.POLLIN)
        self.poller.register(capture.read_fd, select.POLLIN)

    def wait(self) -> None:
        until = min(self.next_ship, self.deadline) if self.deadline else self.next_ship
        wait = max(0.0, until - time.monotonic())
        if self.pidfd is None:
            wait = min(wait, 0.05)  # nothing tells us of the exit: look again soon
        self.poller.poll(wait * 1000)
        self.drain()

    def drain(self) -> None:
        """Take what the pipe holds; a background child may keep it open after the exit."""
        if self.pipe_open and self.capture.pump():
            self.poller.unregister(self.capture.read_fd)
            self.pipe_open = False

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None
