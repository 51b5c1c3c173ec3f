"""LOG_DIR, opened once: log files are created relative to it and never through a link.

A job id is chosen by whoever enqueues, and anyone who can write to LOG_DIR could
plant ``<id>.log`` as a symlink (or a hard link) to a file elsewhere before the job
runs. So the directory is 0700, each file is opened with ``O_NOFOLLOW`` relative to
a descriptor of the directory (no path is resolved twice), created 0600, and
anything but a regular file with one link fails that run with a clear error.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Generator
from pathlib import Path

from queuectl.worker.outcome import Ending, SetupError, describe, environment_or_job

log = logging.getLogger("queuectl.worker")

# How long a look that found LOG_DIR able to take a new file is trusted (fresh).
USABLE_FOR = 1.0
FILE_FLAGS = (os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NOCTTY
              | os.O_CLOEXEC)
# Errors that name the file in the way rather than the directory or the disk.
_FILE_IN_THE_WAY = {
    errno.ELOOP: "is a symbolic link; refusing to follow it",
    errno.EISDIR: "is a directory",
    errno.ENXIO: "is not a regular file",
    errno.EOPNOTSUPP: "is not a regular file",
    errno.ETXTBSY: "is busy",
}


class LogDir:
    """The job log directory; ``open_log`` is safe to call from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()
        # Descriptors replaced after the directory vanished. Another thread may still be
        # inside an openat() on one; closing it could let the number be reused for an
        # unrelated directory, so they are kept until close().
        self._retired: list[int] = []
        # (directory descriptor, until when): a recent yes of _can_take_a_file (see _usable).
        self._usable_until: tuple[int, float] = (-1, 0.0)

    def open(self) -> None:
        """Create LOG_DIR (0700) if needed and open it; OSError when that is impossible."""
        self._fd = self._open_dir()

    def close(self) -> None:
        for fd in [*self._retired, self._fd]:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = None
        self._retired.clear()

    def open_log(self, name: str) -> int:
        """Open (creating 0600) ``name`` for appending; SetupError says why it cannot be."""
        where = self.path / name
        fd = self._open_file(name, where)
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            raise SetupError(environment_or_job(exc),
                             f"cannot stat log file {where}: {describe(exc)}") from None
        # O_RDWR opens a FIFO without blocking; it and other special files end up here.
        problem = ("is not a regular file" if not stat.S_ISREG(st.st_mode)
                   else f"has {st.st_nlink} hard links" if st.st_nlink != 1 else "")
        if problem:
            os.close(fd)
            raise SetupError(Ending.NOT_STARTED, f"log file {where} {problem}; not written")
        if st.st_mode & 0o077:
            with contextlib.suppress(OSError):  # a file from before we made them 0600
                os.fchmod(fd, 0o600)
        return fd

    def fresh(self, name: str) -> bool:
        """True when ``name`` does not exist and the directory looks able to take it: the
        file may then be created when the run first writes. False says "open it now", so
        that ``open_log`` judges whatever is in the way (the run's failure) or a directory
        that cannot take it (the host's) before the job is spawned.

        Only looks: nothing is created. A disk that fills up between this and the
        first write loses that run's file copy with one warning (output.py)."""
        fd = self._fd
        if fd is None:
            return False
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return self._usable(fd)
        except OSError:
            return False
        return False  # a previous run's file, or something planted there

    def _usable(self, fd: int) -> bool:
        """_can_take_a_file, whose yes holds for USABLE_FOR seconds. Its three calls are
        three GIL handoffs of a busy job thread; a disk that breaks within that second
        costs only the runs that write meanwhile their file copy (one warning each)."""
        now = time.monotonic()
        seen, until = self._usable_until
        if seen == fd and now < until:
            return True
        usable = _can_take_a_file(fd)
        self._usable_until = (fd, now + USABLE_FOR) if usable else (-1, 0.0)
        return usable

    # -- retention (janitor.py) -----------------------------------------------------------
    def scan(self) -> Generator[str, None, None]:
        """The names in the directory, read lazily; close() the generator to stop early."""
        fd = self._fd
        if fd is None:
            return
        with os.scandir(fd) as entries:
            for entry in entries:
                yield entry.name

    def stat(self, name: str) -> os.stat_result | None:
        """``name``'s status when it is a regular file (never through a link), else None."""
        if self._fd is None:
            return None
        try:
            st = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return st if stat.S_ISREG(st.st_mode) else None

    def remove(self, name: str) -> bool:
        """Delete ``name``; False when it is already gone."""
        if self._fd is None:
            return False
        try:
            os.unlink(name, dir_fd=self._fd)
        except FileNotFoundError:
            return False
        return True

    # -- internals -----------------------------------------------------------------------
    def _open_dir(self) -> int:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o077:
                if st.st_uid == os.geteuid():
                    os.fchmod(fd, 0o700)
                    log.info("log directory %s was mode %04o; made it 0700", self.path,
                             stat.S_IMODE(st.st_mode))
                else:
                    log.warning("log directory %s is mode %04o and owned by uid %d, not us: "
                                "others may read job output", self.path,
                                stat.S_IMODE(st.st_mode), st.st_uid)
        except OSError:
            os.close(fd)
            raise
        return fd

    def _open_file(self, name: str, where: Path) -> int:
        for first in (True, False):
            dir_fd = self._fd
            if dir_fd is None:
                raise SetupError(Ending.ENVIRONMENT, f"log directory {self.path} is not open")
            try:
                return os.open(name, FILE_FLAGS, 0o600, dir_fd=dir_fd)
            except OSError as exc:
                # With O_CREAT and a plain name, ENOENT means our directory was deleted
                # (or replaced): re-create it once, then call it the host's failure.
                if first and exc.errno == errno.ENOENT:
                    self._reopen(dir_fd)
                    continue
                raise self._classify(exc, name, where, dir_fd) from None
        raise AssertionError("unreachable")

    def _reopen(self, stale: int) -> None:
        with self._lock:
            if self._fd != stale:
                return  # another thread already did
            try:
                fresh = self._open_dir()
            except OSError as exc:
                raise SetupError(Ending.ENVIRONMENT,
                                 f"log directory {self.path} vanished and cannot be "
                                 f"re-created: {describe(exc)}") from None
            self._retired.append(stale)
            self._fd = fresh
            log.warning("log directory %s vanished; re-created it", self.path)

    def _classify(self, exc: OSError, name: str, where: Path, dir_fd: int) -> SetupError:
        if exc.errno in _FILE_IN_THE_WAY:
            return SetupError(Ending.NOT_STARTED,
                              f"log file {where} {_FILE_IN_THE_WAY[exc.errno]}; not written")
        if exc.errno in (errno.EACCES, errno.EPERM):
            # The file's own permissions (it exists) are this job's problem; a directory
            # we may not create files in is the host's.
            try:
                os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                return SetupError(Ending.ENVIRONMENT, f"cannot create log file in "
                                  f"{self.path}: {describe(exc)}")
            return SetupError(Ending.NOT_STARTED, f"cannot open log file {where}: "
                              f"{describe(exc)}")
        return SetupError(environment_or_job(exc),
                          f"cannot open log file {where}: {describe(exc)}")


def _can_take_a_file(dir_fd: int) -> bool:
    """Whether the directory still exists, is writable to us and has room for a file."""
    try:
        if os.fstat(dir_fd).st_nlink == 0:  # deleted: open_log re-creates it now
            return False
        disk = os.statvfs(dir_fd)
        if disk.f_flag & os.ST_RDONLY or disk.f_bavail == 0 or disk.f_favail == 0:
            return False
        # As the worker's effective user, as the open would be.
        return os.access(".", os.W_OK | os.X_OK, dir_fd=dir_fd, effective_ids=True)
    except OSError:
        return False
