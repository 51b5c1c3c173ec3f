"""Where a job's output goes: its log file, the worker's stdout (tagged), and a capped tail.

The child writes into a pipe; the worker reads it in 64 KiB chunks, copies each chunk to
the log file and/or stdout, and keeps at most ``cap`` bytes of tail and at most
``MAX_LINE`` bytes of an unfinished line, so memory stays bounded whatever the command
writes (binary, huge, no newlines).

A run's log file is created when the run first writes (``LogDir.fresh``): most jobs of a
busy queue write nothing, and creating a file is the dearest thing a worker does for a
``true`` job (an inode: 11 to 110 us of kernel time on ext4 here, and a later unlink).
When something is at the file's path already, or the directory does not look able to
take a new file, it is opened before the spawn, so that what is in the way fails the run
and a broken disk hands the job back (logdir.py); a header then waits for the run's
first output too, unless the file is new.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading

from queuectl.core.settings import LogTarget
from queuectl.worker.logdir import LogDir
from queuectl.worker.outcome import SetupError, describe, environment_or_job

log = logging.getLogger("queuectl.worker")

READ_SIZE = 64 * 1024
MAX_LINE = 64 * 1024
_stdout_lock = threading.Lock()


class Capture:
    """One run's output sinks; ``child_fd`` is given to the child as stdout and stderr.

    Construction raises SetupError (never a bare OSError) when the sinks cannot be
    set up; once the job runs, a failing copy (a full disk, a closed stdout, a log file
    that cannot be created) is logged once and dropped, and never stops the run.
    """

    def __init__(self, job_id: str, header: bytes, target: LogTarget, logs: LogDir | None,
                 cap: int) -> None:
        self.cap = cap
        self.child_fd = -1
        self._job_id = job_id
        self._header = header
        self._tag = f"[{job_id}] ".encode()
        self._to_stdout = target in (LogTarget.STDOUT, LogTarget.BOTH)
        # The directory to create the log file in when the run first writes; None once it
        # is open, or when no file is wanted, or after its copy was dropped.
        self._later: LogDir | None = None
        self._file_fd: int | None = None
        self._header_due = False  # the file is open, and the header goes in at first output
        self._read_fd: int | None = None
        self._tail = bytearray()
        self._partial = bytearray()
        self._produced = 0
        try:
            if target in (LogTarget.FILE, LogTarget.BOTH):
                assert logs is not None, "a file target needs the log directory"
                if logs.fresh(self._name):
                    self._later = logs
                else:
                    self._open_file(logs, now=False)
            self._open_pipe()
        except BaseException:
            self.close()
            raise

    @property
    def _name(self) -> str:
        return f"{self._job_id}.log"

    def _open_file(self, logs: LogDir, *, now: bool) -> None:
        """Open the log file; its header is written now when ``now`` or when the file is
        new (a disk too full for it then hands the job back), else at the first output."""
        self._file_fd = logs.open_log(self._name)
        try:
            if now or os.fstat(self._file_fd).st_size == 0:
                self._write_header()
            else:
                self._header_due = True
        except OSError as exc:
            raise SetupError(environment_or_job(exc), f"cannot write to log file "
                             f"{logs.path / self._name}: {describe(exc)}") from None

    def _write_header(self) -> None:
        assert self._file_fd is not None
        os.write(self._file_fd, self._header)
        self._header_due = False

    def _open_pipe(self) -> None:
        try:
            self._read_fd, self.child_fd = os.pipe2(os.O_CLOEXEC)
            # Only our end is non-blocking (the child's stays blocking): ``pump`` reads
            # until EAGAIN rather than select(), which fails on descriptors >= 1024.
            os.set_blocking(self._read_fd, False)
        except OSError as exc:
            raise SetupError(environment_or_job(exc),
                             f"cannot create the output pipe: {describe(exc)}") from None
        self._produced = len(self._header)
        self._keep(self._header)
        self._emit_lines(self._header)

    @property
    def read_fd(self) -> int:
        """Our end of the output pipe, from ``__init__`` until ``close``."""
        assert self._read_fd is not None, "the capture is closed"
        return self._read_fd

    def spawned(self) -> None:
        """Drop our copy of the pipe's write end so EOF arrives when the job's tree exits."""
        os.close(self.child_fd)
        self.child_fd = -1

    def pump(self) -> bool:
        """Read what the pipe holds now (without blocking); True at end of file."""
        assert self._read_fd is not None
        while True:
            try:
                data = os.read(self._read_fd, READ_SIZE)
            except BlockingIOError:
                return False
            if not data:
                self._flush_partial()
                return True
            self._produced += len(data)
            self._keep(data)
            self._copy_to_file(data)
            self._emit_lines(data)

    def _first_output(self, logs: LogDir) -> None:
        """Create the log file the run's first output goes to; a failure drops the copy."""
        self._later = None
        try:
            self._open_file(logs, now=True)
        except SetupError as exc:
            self._drop_file(f"its output is not copied to a log file: {exc}")

    def _copy_to_file(self, data: bytes) -> None:
        if self._later is not None:
            self._first_output(self._later)
        if self._file_fd is None:
            return
        try:
            if self._header_due:
                self._write_header()
            view = memoryview(data)
            while view:  # a regular file may take a short write when the disk fills up
                view = view[os.write(self._file_fd, view):]
        except OSError as exc:
            self._drop_file(f"stopped copying output to its log file: {describe(exc)}")

    def _drop_file(self, why: str) -> None:
        """Give up the file copy for the rest of the run (the tail in Redis goes on)."""
        log.warning("job %s: %s", self._job_id, why)
        if self._file_fd is not None:
            os.close(self._file_fd)
            self._file_fd = None

    def _keep(self, data: bytes) -> None:
        self._tail += data
        if len(self._tail) > self.cap:
            del self._tail[: len(self._tail) - self.cap]

    def _emit_lines(self, data: bytes) -> None:
        if not self._to_stdout:
            return
        self._partial += data
        lines: list[bytes] = [bytes(x) for x in self._partial.split(b"\n")]
        self._partial = bytearray(lines.pop())
        if len(self._partial) > MAX_LINE:
            lines.append(bytes(self._partial))
            self._partial.clear()
        if lines:
            out = b"".join(self._tag + line + b"\n" for line in lines)
            try:
                with _stdout_lock:
                    sys.stdout.buffer.write(out)
                    sys.stdout.buffer.flush()
            except (OSError, ValueError) as exc:  # ValueError: stdout was closed
                log.warning("job %s: stopped copying output to stdout: %s", self._job_id, exc)
                self._to_stdout = False

    def _flush_partial(self) -> None:
        if self._to_stdout and self._partial:
            self._emit_lines(b"\n")

    def take(self) -> tuple[bytes, int]:
        """Output not yet shipped to Redis: (at most ``cap`` last bytes, bytes produced)."""
        chunk, produced = bytes(self._tail), self._produced
        self._tail.clear()
        self._produced = 0
        return chunk, produced

    def last_line(self, chunk: bytes) -> str:
        """The last non-empty output line, shortened, to explain a failure."""
        for line in reversed(chunk.splitlines()):
            text = line.strip().decode("utf-8", "replace")
            if text and not text.startswith("--- attempt"):
                return text[:200]
        return ""

    def close(self) -> None:
        self._flush_partial()
        for fd in {self._read_fd, self._file_fd, self.child_fd}:
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._file_fd = None
        self.child_fd = -1
