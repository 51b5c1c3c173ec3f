"""Ending whatever is left of a run: its cgroup, its process group, and what escaped both.

When a run's main process ends (exits, times out, is cancelled, or the worker
stops) everything it started is terminated: SIGTERM, then SIGKILL after the kill
grace, repeated until nothing is left (a fork bomb keeps forking until the last
member dies), for at most ``KILL_WAIT`` more seconds.

What "everything" is depends on what the host allows (README, "What ends with a
job"): with cgroups, the run's cgroup; always, the run's process group (its
leader is the main process) and the adopted orphans that carry the run's token
in their environment or belong to its session (``reaper``).

The main process is reaped (by its Popen) only after this is done. Until then
its pid, which is also the group id, cannot be reused, so ``killpg`` can never
hit a newer, unrelated group: pid_max is often only 32768, and at a thousand
jobs a second pids come round again within a minute.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable

from queuectl.core.settings import JobCgroup
from queuectl.worker.cgroup import JobCgroups, RunCgroup
from queuectl.worker.reaper import RUN_ID_VAR, Children, become_subreaper

log = logging.getLogger("queuectl.worker")

SHELL = "/bin/sh"
KILL_WAIT = 5.0  # how long SIGKILL is repeated before we give up on a process
POLL = 0.01


def exited(pid: int) -> bool:
    """Whether our child ``pid`` has ended, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class ProcessControl:
    """One per worker: how runs are spawned, contained and ended."""

    def __init__(self, kill_grace: float, children: Children | None = None) -> None:
        self.kill_grace = kill_grace
        self.cgroups: JobCgroups | None = None
        self.children = children or Children()
        # Every job's stdin: /dev/null, opened once (Popen's DEVNULL opens it at each spawn).
        self.stdin: int = subprocess.DEVNULL

    def setup(self, mode: JobCgroup) -> str:
        """Become a subreaper and pick the containment the host allows; logs and returns it."""
        if not become_subreaper():
            log.warning("cannot become a child subreaper: orphans of jobs go to init and "
                        "only the job's process group can be ended")
        if not self.children.proc_children:
            log.warning("no /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN): orphans "
                        "are found by scanning /proc, which costs more at each job end")
        why = "QUEUECTL_JOB_CGROUP=off"
        if mode is JobCgroup.AUTO:
            self.cgroups, why = JobCgroups.detect(SHELL)
        choice = f"job cgroups {'on' if self.cgroups else 'off'}: {why}"
        log.info("%s", choice)
        with contextlib.suppress(OSError):  # else each spawn opens it, and says if it cannot
            self.stdin = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        return choice

    def new_run(self, label: str) -> Run:
        """The processes of a new run; ``label`` (the job id) names it in log lines."""
        token = secrets.token_hex(8)
        return Run(self, label, token, self.cgroups.create(token) if self.cgroups else None)

    def reap(self) -> None:
        """Reap adopted orphans that have died (run often: no zombie may pile up), and
        remove the cgroups of ended runs that have emptied since."""
        self.children.sweep(everywhere=True)
        if self.cgroups is not None:
            self.cgroups.sweep()

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()
        if self.stdin >= 0:
            os.close(self.stdin)
            self.stdin = subprocess.DEVNULL


class Run:
    """The processes of one run of one job."""

    def __init__(self, control: ProcessControl, label: str, token: str,
                 cgroup: RunCgroup | None) -> None:
        self.control = control
        self.label = label
        self.token = token
        self.cgroup = cgroup
        self.pid = 0
        self._token = token.encode()
        self._exited = False  # the main process was seen ended (see main_exited)
        # Set once the main process has exited and the cgroup was seen empty: then nothing
        # can enter it again (only members fork into it), and release need not look again.
        self._emptied = False

    def argv(self, command: str) -> list[str]:
        prefix = self.cgroup.prefix if self.cgroup is not None else ""
        return [SHELL, "-c", prefix + command]

    def env(self) -> dict[str, str]:
        return {RUN_ID_VAR: self.token}

    def spawn(self, start: Callable[[list[str]], subprocess.Popen[bytes]],
              command: str) -> subprocess.Popen[bytes]:
        """Start the main process (``start(argv)`` makes the Popen) under the reaper's gate."""
        argv = self.argv(command)
        proc = self.control.children.spawn(lambda: start(argv))
        self.pid = proc.pid
        return proc

    def main_exited(self) -> bool:
        """Whether the main process has ended. A yes is kept: it stays a zombie, and so
        ended, until its Popen reaps it after the last question (Execution._supervise)."""
        if not self._exited:
            self._exited = exited(self.pid)
        return self._exited

    def end(self) -> bool:
        """Terminate everything left of the run; True if anything was."""
        if not self._left():
            return False  # the hot path: the job left nothing behind
        cg, pid = self.cgroup, self.pid
        # In a cgroup every member is signalled once (the cgroup is frozen meanwhile);
        # the group and the adopted orphans cover the rest.
        done = set(cg.signal(signal.SIGTERM)) if cg is not None else set()
        if cg is None or (pid not in done and not self.main_exited()):
            _killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.control.kill_grace
        while True:
            # Orphans are adopted only as their parents die: signal each as it comes.
            self.control.children.sweep(self._token, pid, signal.SIGTERM, done, pgid=pid)
            if not self._left():
                return True
            if time.monotonic() >= deadline:
                self._kill()
                return True
            time.sleep(POLL)

    def _kill(self) -> None:
        deadline = time.monotonic() + KILL_WAIT
        while True:
            if self.cgroup is not None:
                self.cgroup.kill()
            _killpg(self.pid, signal.SIGKILL)
            self.control.children.sweep(self._token, self.pid, signal.SIGKILL)
            time.sleep(POLL)
            if not self._left():
                return
            if time.monotonic() >= deadline:
                log.warning("job %s: processes survived SIGKILL for %gs; left behind",
                            self.label, KILL_WAIT)
                return

    def _left(self) -> bool:
        """Whether anything of the run is alive (reaping dead orphans on the way)."""
        cg = self.cgroup
        if not self.main_exited() or (cg is not None and cg.populated()):
            return True
        self._emptied = True
        return self.control.children.sweep(self._token, self.pid) > 0

    def close(self) -> None:
        """After the main process was reaped: forget it and remove the run's cgroup."""
        if self.pid:
            self.control.children.forget(self.pid)
        if self.cgroup is not None and self.control.cgroups is not None:
            self.control.cgroups.release(self.cgroup, empty=self._emptied)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
