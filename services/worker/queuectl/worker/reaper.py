"""The worker's children: the job shells it spawned, and the orphans it adopts as subreaper.

Jobs run in their own sessions, so a job's background processes outlive its shell
and would be re-parented to init, out of reach of any later kill. As a child
subreaper the worker adopts them instead: when a job's shell exits, whatever is
left of its tree hangs below the worker's main thread (the kernel re-parents to
the subreaper's thread group leader), where it can be attributed to its run by
the run token in its environment (or its session), signalled, and reaped.

Reaping is the dangerous part. A ``waitpid`` on a pid that a Popen object owns
steals its exit status: Popen then gets ECHILD and reports 0, so a failing job
would be recorded as a success. So only pids that are not live Popen children
are ever reaped, and a gate makes each spawn (fork, exec, Popen returning, the
pid registered) atomic with respect to reaping: a job that exits before Popen
returns is a zombie nobody has registered yet, and must not look like an orphan.

Signals go only to pids that cannot have been freed and reused meanwhile: an
adopted child is signalled under the same gate as reaping, and only we reap it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
RUN_ID_VAR = "QUEUECTL_JOB_RUN_ID"
SETTLE = 0.2  # seconds an empty environment may be an exec in progress


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (Linux >= 3.4); False if it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def read_all(path: str) -> bytes:
    """The whole of a (/proc or /sys) file, read without Python's file objects."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if len(data) < 4096:  # a short read of these generated files is all of it
            return data
        chunks = [data]
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class _Identity:
    token: bytes | None  # the run token in its environment, if any
    sid: int
    settled: bool = True  # False: caught mid-exec, look again


class Children:
    """Spawns job processes and keeps them apart from adopted orphans; thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._spawning = 0
        self._reaping = False
        self._live: set[int] = set()
        # Adopted children examined once; a pid stays ours (and so unused) until we reap it.
        self._known: dict[int, _Identity] = {}
        self._unsettled: dict[int, float] = {}  # pid -> when first seen with no environment
        self.proc_children = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")

    # -- spawning ------------------------------------------------------------------------
    def spawn(self, start: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
        """Run ``start`` (which creates one Popen) so that no reaper can take its child."""
        with self._cond:
            while self._reaping:
                self._cond.wait()
            self._spawning += 1
        proc: subprocess.Popen[bytes] | None = None
        try:
            proc = start()
        finally:
            with self._cond:
                self._spawning -= 1
                if proc is not None:
                    self._live.add(proc.pid)
                self._cond.notify_all()
        return proc

    def forget(self, pid: int) -> None:
        """``pid`` was reaped by its Popen: it is no longer a live job process."""
        with self._cond:
            self._live.discard(pid)

    # -- adopted orphans -------------------------------------------------------------------
    def sweep(self, token: bytes | None = None, sid: int = 0, sig: int = 0,
              signalled: set[int] | None = None, pgid: int = 0,
              everywhere: bool = False) -> int:
        """Reap adopted children that died; count (and send ``sig`` to) a run's live ones.

        A run's are those whose environment holds ``token`` or whose session is
        ``sid``. Pids in ``signalled`` (to which those signalled now are added)
        and members of group ``pgid`` are not signalled again. ``everywhere``
        also looks below every thread, not only the main one.
        """
        if not any(p not in self._live and self._maybe(p, token, sid)
                   for p in self._children(everywhere)):
            return 0  # the hot path: one read of a (usually empty) children list
        with self._exclusive() as live:
            count = 0
            for pid in self._children(everywhere):
                if pid in live or self._reaped(pid) or token is None:
                    continue
                ident = self._identify(pid)
                if ident is None:
                    continue
                if not ident.settled:
                    count += 1  # may be the run's: the caller waits and we look again
                elif ident.token == token or (sid and ident.sid == sid):
                    count += 1
                    if sig and (signalled is None or pid not in signalled):
                        _signal_tree(pid, sig, pgid)
                        if signalled is not None:
                            signalled.add(pid)
            return count

    def _maybe(self, pid: int, token: bytes | None, sid: int) -> bool:
        """Whether ``pid`` may need work: unseen, or seen and one of the run's."""
        if token is None:
            return True
        known = self._known.get(pid)
        return known is None or known.token == token or (sid != 0 and known.sid == sid)

    def _reaped(self, pid: int) -> bool:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            self._known.pop(pid, None)
            self._unsettled.pop(pid, None)
        return bool(done)

    def _identify(self, pid: int) -> _Identity | None:
        known = self._known.get(pid)
        if known is not None:
            return known
        try:
            environ = read_all(f"/proc/{pid}/environ")
            stat = read_all(f"/proc/{pid}/stat")
            # After "pid (comm)": state, ppid, pgrp, session.
            sid = int(stat.rpartition(b")")[2].split()[3])
        except (OSError, IndexError, ValueError):
            return None  # exiting, or not ours to read: look again next time
        if not environ:
            # An exec in progress shows an empty environment for a moment (the kernel
            # sets it up after switching to the new memory); a process started with
            # none (env -i) shows it for good. Only time tells them apart.
            first = self._unsettled.setdefault(pid, time.monotonic())
            if time.monotonic() - first < SETTLE:
                return _Identity(None, sid, settled=False)
        self._unsettled.pop(pid, None)
        token = None
        prefix = RUN_ID_VAR.encode() + b"="
        for var in environ.split(b"\0"):
            if var.startswith(prefix):
                token = var[len(prefix):]
        self._known[pid] = ident = _Identity(token, sid)
        return ident

    def _children(self, everywhere: bool) -> list[int]:
        me = os.getpid()
        if not self.proc_children:
            return _scan_proc_for_children(me)
        tids = os.listdir(f"/proc/{me}/task") if everywhere else [str(me)]
        pids: list[int] = []
        for tid in tids:
            with contextlib.suppress(OSError):  # a thread that just ended
                pids += [int(p) for p in read_all(f"/proc/{me}/task/{tid}/children").split()]
        return pids

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[frozenset[int]]:
        """Hold off new spawns and wait for those in flight; yields the live job pids."""
        with self._cond:
            while self._reaping:
                self._cond.wait()
            self._reaping = True
            while self._spawning:
                self._cond.wait()
            live = frozenset(self._live)
        try:
            yield live
        finally:
            with self._cond:
                self._reaping = False
                self._cond.notify_all()


def _signal_tree(pid: int, sig: int, covered: int) -> None:
    """Signal an adopted child, and its whole process group if it leads one."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # It is our unreaped child, so its pid (and the group id equal to it) is still its.
        group = os.getpgid(pid)
        if group == covered:
            return
        if group == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _scan_proc_for_children(me: int) -> list[int]:
    """Children of ``me`` from /proc/*/stat, for kernels without /proc/.../children."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = read_all(f"/proc/{entry}/stat").rpartition(b")")[2].split()
                if int(fields[1]) == me:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids
