"""Several worker processes under one parent: ``QUEUECTL_WORKER_PROCESSES`` / ``--processes``.

One process runs its job threads under one GIL; the Python work around each job (fetch,
finish, spawn) then caps throughput below what the machine can spawn. Each child here is
a whole worker (its own worker id and heartbeat, its own Redis connections, its own
/metrics, /healthz and /readyz on ``QUEUECTL_METRICS_PORT`` + its index), started as a
fresh interpreter rather than forked, so that no lock held by another thread of the parent
is copied into it. The parent holds no job and no Redis connection: it forwards signals
and watches its children.

* SIGTERM or SIGINT is passed on to every child, which drains as a single worker does; a
  second one is passed on too, and stops running jobs at once. The children have their
  own process group, so that a signal sent to the parent's group arrives only once.
* A child that ends on its own with code 0 was stopped (``queuectl worker stop``): the
  others go on. A child that dies otherwise (killed, or exiting non-zero) stops the
  others (drained, as on SIGTERM) and the parent exits 1 with one line saying which.
* A child dies with its parent (PR_SET_PDEATHSIG on Linux): a parent killed with SIGKILL
  leaves no worker behind it running unsupervised.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType

from queuectl.core.errors import QueueCtlError
from queuectl.core.settings import Settings
from queuectl.worker.heartbeat import EXIT_CANNOT_WORK

log = logging.getLogger("queuectl.worker")
# How often the parent looks at its children; a death is noticed within this.
POLL = 0.2
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    index: int
    process: subprocess.Popen[bytes]

    def ended(self) -> str:
        """``exited with code 3`` or ``was killed by SIGKILL``."""
        code = self.process.returncode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"


def child_environment(settings: Settings, url: str, index: int, count: int | None,
                      queues: list[str] | None) -> dict[str, str]:
    """What child ``index`` is configured by: the parent's environment, resolved."""
    env = dict(os.environ)
    # The URL the parent resolved: with the embedded default, the socket it started.
    env["QUEUECTL_REDIS_URL"] = url
    env["QUEUECTL_WORKER_PROCESSES"] = "1"
    env["QUEUECTL_CONCURRENCY"] = str(count or settings.concurrency)
    env["QUEUECTL_QUEUES"] = ",".join(queues or settings.queues)
    if settings.worker_id:
        # One heartbeat identity per process: a given id gets the child's index.
        env["QUEUECTL_WORKER_ID"] = f"{settings.worker_id}-{index}"
    return env


def supervise(settings: Settings, url: str, processes: int, *, count: int | None = None,
              queues: list[str] | None = None) -> int:
    """Run ``processes`` workers until they have all ended; the exit code of the whole."""
    children = [Child(i, subprocess.Popen(
        [sys.executable, "-m", "queuectl.worker.processes", str(i), str(os.getpid())],
        env=child_environment(settings, url, i, count, queues),
        # Their own process group: a signal to the parent's group (Ctrl-C in a terminal,
        # tini -g in the container) must reach each child once, through the parent. Twice
        # would read as the second signal, which stops running jobs instead of draining.
        process_group=0))
        for i in range(processes)]
    log.info("started %d worker processes (pids %s), %d threads each", processes,
             ", ".join(str(c.process.pid) for c in children), count or settings.concurrency)
    stopping: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        _signal(children, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failure: Child | None = None
    while any(c.process.poll() is None for c in children):
        time.sleep(POLL)
        if failure is None and not stopping:
            failure = _first_failure(children)
            if failure is not None:
                log.error("worker process %d (pid %d) %s: draining the others",
                          failure.index, failure.process.pid, failure.ended())
                _signal(children, signal.SIGTERM)
    if failure is not None:
        raise WorkerProcessError(failure, "; stopped the other worker processes")
    # Every child stopped on request: the whole stopped cleanly only if each one did.
    failure = _first_failure(children)
    if failure is not None:
        raise WorkerProcessError(failure, "")
    return 0


def _signal(children: list[Child], signum: int) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signum)


def _first_failure(children: list[Child]) -> Child | None:
    """The first child that has ended other than by a clean stop (code 0)."""
    for child in children:
        if child.process.poll() not in (None, 0):
            return child
    return None


def _die_with_parent(parent: int) -> None:
    """SIGTERM this child (a drain) when the parent dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        # The parent died before the line above took effect: nobody would ever signal us.
        raise SystemExit(EXIT_CANNOT_WORK)


def child_main(index: int, parent: int) -> None:
    """A child's entry point: a whole worker, its endpoint on the base port + ``index``."""
    from queuectl.core.entrypoint import run_service
    from queuectl.worker.main import run

    _die_with_parent(parent)
    run_service("queuectl-worker", "queuectl worker start",
                lambda settings: run(settings, port_offset=index))


class WorkerProcessError(QueueCtlError):
    """A worker process died: the parent's exit code is the child's own when it exited
    with one (its error line is above, on the same stderr), 1 when it was killed."""

    def __init__(self, child: Child, more: str) -> None:
        super().__init__(f"worker process {child.index} (pid {child.process.pid}) "
                         f"{child.ended()}{more}")
        code = child.process.returncode
        self.exit_code = code if code is not None and code > 0 else EXIT_CANNOT_WORK


if __name__ == "__main__":
    child_main(int(sys.argv[1]), int(sys.argv[2]))
