"""One cgroup v2 per run, where the hierarchy is writable: nothing a job starts can leave it.

A process can leave its process group and session (``setsid``) and change its
environment, but not its cgroup (short of writing to cgroup files itself), and
``cgroup.kill`` ends every member at once, fork bombs included. The worker
makes ``<its own cgroup>/queuectl-<pid>-<random>/`` and one child per run.

The job is put in its cgroup without a ``preexec_fn`` (which would force a full
fork of the worker): the job's shell moves itself, by a prefix on the same line
as the command, ``{ echo 0 > CG/cgroup.procs; } 2>/dev/null || :; COMMAND``.
Being on line 1, it leaves ``$0``, ``$?``, exit codes and error messages
(line numbers included) those of ``/bin/sh -c COMMAND``; a command with a syntax
error fails to parse as a whole, exactly as before, and starts nothing. A
wrapper that execs a second shell would be exact too, but costs a second exec
per job (about a third of the throughput of ``true`` jobs). If the move fails,
the command runs anyway, still covered by the process-group and orphan
clean-up (see ``remains``).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import shlex
import subprocess
import threading
import time
from pathlib import Path

from queuectl.worker.reaper import read_all

log = logging.getLogger("queuectl.worker")

FREEZE_WAIT = 1.0
# An ended run's cgroup is busy until its last member has left: tried this often, this
# far apart, before it is reported left behind.
REMOVE_TRIES = 50
REMOVE_PAUSE = 0.01
_STALE = re.compile(r"^queuectl-(\d+)-[0-9a-f]+$")


def _octal_unescape(text: str) -> str:
    # /proc/self/mountinfo writes a space in a mount point as \040.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def own_cgroup_dir() -> Path | None:
    """The directory of this process's cgroup v2, or None on a v1-only host."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    own = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if own is None:
        return None
    for line in mounts:
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if not after.startswith("cgroup2 ") or len(parts) < 5:
            continue
        root, mount = _octal_unescape(parts[3]), _octal_unescape(parts[4])
        # With a cgroup namespace both are "/"; without one the mount may show a subtree.
        if own == root or own.startswith(root.rstrip("/") + "/"):
            path = Path(mount) / own[len(root):].lstrip("/")
            if path.is_dir():
                return path
    return None


class RunCgroup:
    """The cgroup of one run."""

    def __init__(self, path: str, quoted: str) -> None:
        # Plain strings, built once: this is on the path of every job.
        self.path = path
        self.procs = f"{path}/cgroup.procs"
        self._events = f"{path}/cgroup.events"
        # "echo 0" writes the shell's own pid: it moves itself, and all it forks later.
        self.prefix = f"{{ echo 0 > {quoted}/cgroup.procs; }} 2>/dev/null || :; "

    def populated(self) -> bool:
        """Whether any process of the run is still alive in it (zombies do not count)."""
        try:
            return b"populated 1" in read_all(self._events)
        except OSError:
            return False

    def signal(self, sig: int) -> frozenset[int]:
        """Send ``sig`` to every member; returns their pids.

        The cgroup is frozen meanwhile, so no member can exit, be reaped and have its
        pid reused by an unrelated process between reading the list and the kill.
        """
        frozen = self._freeze(True)
        try:
            pids = frozenset(int(p) for p in read_all(self.procs).split())
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            return pids
        except OSError:
            return frozenset()
        finally:
            if frozen:
                self._freeze(False)

    def kill(self) -> None:
        """SIGKILL every member at once (forks racing the kill are killed too)."""
        with contextlib.suppress(OSError):
            _write(f"{self.path}/cgroup.kill", b"1")

    def try_remove(self) -> bool | None:
        """One attempt: True when it is gone, False while a member that has already been
        reaped is still leaving it (EBUSY), None when it cannot be removed at all."""
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            return True
        except OSError as exc:
            return False if exc.errno == errno.EBUSY else None
        return True

    def remove(self) -> bool:
        for _ in range(REMOVE_TRIES):
            gone = self.try_remove()
            if gone is not False:
                break
            time.sleep(REMOVE_PAUSE)  # the last member is still on its way out
        else:
            gone = False
        if not gone:
            log.warning("cannot remove job cgroup %s; left behind", self.path)
        return bool(gone)

    def _freeze(self, on: bool) -> bool:
        try:
            _write(f"{self.path}/cgroup.freeze", b"1" if on else b"0")
        except OSError:
            return False
        deadline = time.monotonic() + FREEZE_WAIT
        while on and time.monotonic() < deadline:  # else: a member in uninterruptible sleep
            with contextlib.suppress(OSError):
                if b"frozen 1" in read_all(self._events):
                    break
            time.sleep(0.002)
        return True


class JobCgroups:
    """The worker's subtree of job cgroups."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._base = str(base)
        self._quoted = shlex.quote(self._base)
        self._warned = False
        # The kernel takes milliseconds to make and remove a cgroup (rmdir waits for the
        # last member to be released), which delayed every job's outcome by 4-10 ms: an
        # ended run's cgroup with no live member is kept for the next run instead. At
        # most one per job thread is kept, since a run takes one only while it runs.
        self._lock = threading.Lock()
        self._free: list[RunCgroup] = []
        # Those that still had a live member: removed by ``sweep`` once they empty.
        self._leaving: dict[str, tuple[RunCgroup, float]] = {}

    def release(self, cgroup: RunCgroup, *, empty: bool = False) -> None:
        """Keep an ended run's empty cgroup for the next run; one that still has a live
        member (``end`` could not end it) is removed, now or by ``sweep``. ``empty``: the
        caller saw it empty after its last member's parent had exited (Run._left)."""
        if empty or not cgroup.populated():
            with self._lock:
                self._free.append(cgroup)
            return
        gone = cgroup.try_remove()
        if gone is None:
            log.warning("cannot remove job cgroup %s; left behind", cgroup.path)
        elif not gone:
            with self._lock:
                self._leaving[cgroup.path] = (cgroup, time.monotonic())

    def sweep(self) -> None:
        """Remove the released cgroups that have emptied; give up on one busy too long."""
        with self._lock:
            leaving = list(self._leaving.values())
        for cgroup, since in leaving:
            gone = cgroup.try_remove()
            if gone is False and time.monotonic() - since < REMOVE_TRIES * REMOVE_PAUSE:
                continue
            with self._lock:
                del self._leaving[cgroup.path]
            if not gone:
                log.warning("cannot remove job cgroup %s; left behind", cgroup.path)

    @classmethod
    def detect(cls, shell: str) -> tuple[JobCgroups | None, str]:
        """A usable subtree, or None and the reason, after a real probe run."""
        parent = own_cgroup_dir()
        if parent is None:
            return None, "no cgroup v2 hierarchy is mounted for this process"
        base = parent / f"queuectl-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            base.mkdir()
        except OSError as exc:
            return None, f"{parent} is not writable ({os.strerror(exc.errno or 0)})"
        cgroups = cls(base)
        if not (base / "cgroup.kill").exists():
            cgroups.close()
            return None, "the kernel has no cgroup.kill (Linux >= 5.14 needed)"
        # The real thing, once: a shell moving itself into a fresh cgroup (a delegated
        # hierarchy may allow mkdir but not the move, which needs write access to the
        # common ancestor's cgroup.procs).
        probe = cgroups.create("probe")
        try:
            moved = probe is not None and subprocess.run(
                [shell, "-c", f"echo 0 > {shlex.quote(probe.procs)}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, check=False).returncode == 0
        except OSError:
            moved = False
        if probe is not None:
            probe.remove()
        if not moved:
            cgroups.close()
            return None, f"cannot move processes into cgroups under {parent}"
        cgroups.remove_stale(parent)
        return cgroups, f"jobs run in cgroups under {base}"

    def create(self, name: str) -> RunCgroup | None:
        """A cgroup with no live member for one run, or None (the run then goes without)."""
        while True:
            with self._lock:
                if not self._free:
                    break
                kept = self._free.pop()
            if os.path.isdir(kept.path):  # not removed under us
                return kept
        path = f"{self._base}/{name}"  # name: a hex run id, nothing to quote
        try:
            try:
                os.mkdir(path)
            except FileNotFoundError:  # our subtree was removed under us: make it again
                self.base.mkdir(exist_ok=True)
                os.mkdir(path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot create job cgroup %s (%s); runs go without one until it "
                            "works again", path, os.strerror(exc.errno or 0))
            return None
        return RunCgroup(path, f"{self._quoted}/{name}")

    def close(self) -> None:
        """Remove the worker's subtree, after the cgroups of ended runs still leaving it."""
        with self._lock:
            leaving = self._free + [cgroup for cgroup, _ in self._leaving.values()]
            self._free.clear()
            self._leaving.clear()
        for cgroup in leaving:
            cgroup.remove()
        with contextlib.suppress(OSError):
            os.rmdir(self.base)

    def remove_stale(self, parent: Path) -> None:
        """Remove empty subtrees left by workers that were killed (their pid is gone)."""
        with contextlib.suppress(OSError):
            for entry in parent.iterdir():
                match = _STALE.match(entry.name)
                if not match or entry == self.base or _alive(int(match.group(1))):
                    continue
                for run in entry.iterdir():
                    if run.is_dir():
                        with contextlib.suppress(OSError):
                            os.rmdir(run)
                try:
                    os.rmdir(entry)
                except OSError:
                    log.warning("stale job cgroup %s of a dead worker still has processes",
                                entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)

