"""Real QueueCTL processes for the integration tests: start, signal, inspect, always clean up.

Every process a test starts goes through ``Procs``; its finalizer kills whatever
is still running, the job process trees under it included (jobs run in their
own sessions, so killing a worker alone would leave them behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from queuectl.core.client import Client
from queuectl.core.models import Job, JobState
from queuectl.core.store import as_str

BIN = Path(sys.executable).parent
T = TypeVar("T")


def eventually(predicate: Callable[[], T], timeout: float = 20.0, *, what: str = "",
               interval: float = 0.05, describe: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError naming ``what`` (and ``describe()``: the state that
    was seen) when ``timeout`` passes first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"; {describe()}" if describe is not None else ""
            raise AssertionError(
                f"not true within {timeout:g}s: {what or predicate.__name__} "
                f"(last value {value!r}){detail}"
            )
        time.sleep(interval)


class Proc:
    """One QueueCTL process; stdout and stderr go to files the test can read."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.name = name
        self.popen = popen
        self.out_path = out
        self.err_path = err

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.popen.send_signal(sig)

    def wait_exit(self, timeout: float = 20.0) -> int:
        """The exit code; AssertionError (with the process's stderr) if it does not exit."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} (pid {self.pid}) did not exit within {timeout:g}s; "
                f"stderr:\n{self.stderr()[-3000:]}"
            ) from None

    def stdout(self) -> bytes:
        return self.out_path.read_bytes()

    def stderr(self) -> str:
        return self.err_path.read_text("utf-8", "replace")

    def rss_kib(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS), in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for pid {self.pid}")


class Procs:
    """Starts ``queuectl-worker`` / ``queuectl-scheduler`` processes with a test's environment."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.started: list[Proc] = []
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self, program: str, env: Mapping[str, str] | None = None,
              args: Sequence[str] = ()) -> Proc:
        name = f"{program}-{len(self.started)}"
        out, err = self.workdir / f"{name}.out", self.workdir / f"{name}.err"
        with out.open("wb") as out_f, err.open("wb") as err_f:
            popen = subprocess.Popen(
                [str(BIN / program), *args], env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f,
            )
        proc = Proc(name, popen, out, err)
        self.started.append(proc)
        return proc

    def worker(self, env: Mapping[str, str] | None = None) -> Proc:
        return self.start("queuectl-worker", env)

    def scheduler(self, env: Mapping[str, str] | None = None) -> Proc:
        return self.start("queuectl-scheduler", env)

    def cleanup(self) -> None:
        """Kill every process still running and everything under it; print their stderr."""
        for proc in self.started:
            if proc.alive():
                tree = descendants(proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait()
                for pid in tree:
                    kill_quietly(pid)
            err = proc.stderr()
            print(f"--- {proc.name} (pid {proc.pid}) exited {proc.popen.returncode}; "
                  f"stderr tail:\n{err[-2000:]}")


def _stat_fields(stat: str) -> list[str]:
    # /proc/<pid>/stat is "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    return stat.rpartition(")")[2].split()


def _processes() -> Iterator[tuple[int, str, int]]:
    """(pid, state, ppid) of every process, read from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields((entry / "stat").read_text())
            yield int(entry.name), fields[0], int(fields[1])
        except (OSError, IndexError, ValueError):
            continue


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for pid, _, ppid in _processes():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    reap(pid)


def reap(pid: int) -> None:
    """Collect ``pid`` if it is a dead child of ours (see ``subreaper``)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer exists (reaping it first if it is our zombie)."""
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def reap_orphans(exclude: set[int]) -> None:
    """Collect dead processes we adopted as subreaper (our own children in ``exclude`` stay)."""
    me = os.getpid()
    for pid, state, ppid in list(_processes()):
        if ppid == me and state == "Z" and pid not in exclude:
            reap(pid)


PR_SET_CHILD_SUBREAPER = 36


@contextlib.contextmanager
def subreaper() -> Iterator[None]:
    """Make this process the reaper of orphans below it while the block runs.

    A job's background child outlives its shell and is re-parented; where PID 1
    does not reap (as in some sandboxes and containers), a killed orphan stays
    a zombie and ``kill(pid, 0)`` still succeeds. As the subreaper, the test can
    reap it and then see that it is truly gone.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


class RedisServer(Protocol):
    """What the ``own_redis`` fixture gives (tests/redis_server.py LocalRedis)."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> object: ...

    def restart(self) -> None: ...


# -- job helpers ---------------------------------------------------------------------------------

def load_jobs(client: Client, ids: Sequence[str]) -> dict[str, Job]:
    """The records of ``ids`` that exist, read in one pipeline."""
    pipe = client.redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(client.keys.job(job_id))
    jobs = (Job.from_hash({as_str(k): as_str(v) for k, v in raw.items()})
            for raw in pipe.execute() if raw)
    return {job.id: job for job in jobs}


def describe_jobs(client: Client, ids: Sequence[str]) -> str:
    """State counts, and the first few jobs that have not ended, for failure messages."""
    counts: dict[str, int] = {}
    open_jobs: list[str] = []
    jobs = load_jobs(client, ids)
    for job_id in ids:
        job = jobs.get(job_id)
        state = job.state.value if job else "missing"
        counts[state] = counts.get(state, 0) + 1
        if job is None or not job.state.ended:
            open_jobs.append(f"{job_id}={state}")
    return f"states {counts}; not ended: {open_jobs[:5]}"


def wait_ended(client: Client, ids: Sequence[str], timeout: float = 30.0) -> dict[str, Job]:
    """Block until every job has ended; AssertionError with their states otherwise."""
    ids = list(ids)

    def ended() -> dict[str, Job]:
        jobs = load_jobs(client, ids)
        if len(jobs) == len(ids) and all(j.state.ended for j in jobs.values()):
            return jobs
        return {}

    return eventually(ended, timeout, what=f"{len(ids)} job(s) ended", interval=0.1,
                      describe=lambda: describe_jobs(client, ids))


def wait_state(client: Client, job_id: str, state: JobState, timeout: float = 20.0) -> Job:
    def reached() -> Job | None:
        job = client.find(job_id)
        return job if job is not None and job.state is state else None

    return _present(eventually(reached, timeout, what=f"job {job_id} {state.value}",
                               describe=lambda: describe_jobs(client, [job_id])))


def wait_registered(client: Client, proc: Proc, timeout: float = 20.0) -> str:
    """The worker id of ``proc`` once its status hash is in Redis."""
    def registered() -> str | None:
        assert proc.alive(), f"{proc.name} exited early:\n{proc.stderr()[-2000:]}"
        for info in client.workers():
            if info.alive and info.fields.get("pid") == str(proc.pid):
                return info.id
        return None

    return _present(eventually(registered, timeout, what=f"{proc.name} registered"))


def _present(value: T | None) -> T:
    assert value is not None
    return value


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
