"""How a run ended, and which failures to set one up are the job's fault or the worker's."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from enum import Enum


class Ending(Enum):
    EXITED = "exited"          # the command exited by itself (any code)
    TIMED_OUT = "timed_out"    # we killed it at its timeout
    NOT_STARTED = "not_started"  # the job's own input kept it from starting: fail the run
    LEASE_LOST = "lease_lost"  # cancelled or taken over: we stopped it, must not report
    INTERRUPTED = "interrupted"  # the worker is shutting down hard: hand the job back
    ENVIRONMENT = "environment"  # the worker's host kept it from starting: hand it back


@dataclass(slots=True)
class RunResult:
    ending: Ending
    exit_code: int | None
    error: str
    chunk: bytes
    produced: int
    seconds: float
    # time.monotonic() just after the command was spawned; None when it never was.
    spawned: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.ending is Ending.EXITED and self.exit_code == 0


class SetupError(Exception):
    """A run could not be set up or started; ``str()`` is the one-line reason."""

    def __init__(self, ending: Ending, message: str) -> None:
        super().__init__(message)
        self.ending = ending


# Errors that say the worker's host is unwell (full or read-only disk, no descriptors, no
# memory or pids left, a log directory we may not write), not that the job is wrong: the
# job is handed back without spending a retry, since it would have run elsewhere.
ENVIRONMENT_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
    errno.ENOTDIR, errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM, errno.EIO,
    errno.ESTALE, errno.ENODEV,
})


def describe(exc: OSError) -> str:
    """The errno's text ("No space left on device"), whatever the exception carries."""
    if exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def environment_or_job(exc: OSError) -> Ending:
    """ENVIRONMENT for the host's failures (see ENVIRONMENT_ERRNOS), NOT_STARTED otherwise."""
    return Ending.ENVIRONMENT if exc.errno in ENVIRONMENT_ERRNOS else Ending.NOT_STARTED


def spawn_error(exc: Exception, shell: str) -> SetupError:
    """Classify a failure of Popen to start ``shell -c COMMAND``."""
    if isinstance(exc, ValueError):
        # Popen refuses arguments with a NUL byte (or text it cannot encode) before forking.
        return SetupError(Ending.NOT_STARTED, f"cannot start: invalid command ({exc})")
    assert isinstance(exc, OSError)
    if exc.errno == errno.E2BIG:
        return SetupError(Ending.NOT_STARTED,
                          f"cannot start: command too long ({describe(exc)})")
    # Anything else is about the worker's shell or its resources (fork, descriptors), not
    # the command: /bin/sh missing or not executable means no job can start here.
    env = exc.errno in ENVIRONMENT_ERRNOS or exc.errno == errno.ENOEXEC
    return SetupError(Ending.ENVIRONMENT if env else Ending.NOT_STARTED,
                      f"cannot start {shell}: {describe(exc)}")
