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
import time
from pathlib import Path

from queuectl.worker.reaper import read_all

log = logging.getLogger("queuectl.worker")

FREEZE_WAIT = 1.0
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

    def remove(self) -> bool:
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    break
                time.sleep(0.01)  # the last member is still on its way out
        log.warning("cannot remove job cgroup %s; left behind", self.path)
        return False

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
        """A fresh cgroup for one run, or None (the run then goes without)."""
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
        """Remove the worker's subtree (runs have removed their own cgroups)."""
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

