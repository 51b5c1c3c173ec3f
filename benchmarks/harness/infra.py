"""The harness's machinery: its own redis-server, worker process groups, samplers of
RSS and CPU, the peers' virtual environments and the statistics every figure is reduced with."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

BENCH = Path(__file__).resolve().parent.parent  # benchmarks/
PEERS = BENCH / "peers"
VENVS = BENCH / ".venvs"
PEER_NAMES = ("rq", "dramatiq", "celery", "arq")


class BenchError(Exception):
    """A figure that could not be measured; its cell says ``failed: <message>``."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server on a free port, no persistence (every system gets the same one)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not on PATH (apt-get install redis-server)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir), "--logfile", str(workdir / "redis.log"),
             "--slowlog-max-len", "100000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        wait_until(self._ping, 10, "redis-server answers")

    def _ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def version(self) -> str:
        return str(self.client.info("server")["redis_version"])

    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def wait_until(check: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.01) -> float:
    """Poll ``check`` until true; the seconds it took, or BenchError after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


class Workers:
    """Worker processes of one system, each in its own session so that stopping it stops
    everything it started (SIGTERM to the group, then SIGKILL after ``grace``)."""

    def __init__(self, argvs: Sequence[Sequence[str]], env: dict[str, str], cwd: Path,
                 log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.procs = [subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True)
                          for argv in argvs]

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
                raise BenchError(f"a worker exited with {proc.returncode}: {' '.join(tail)}")

    def stop(self, grace: float = 10.0) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
            proc.wait()


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


JOB_COMMS = {"sh", "true", "sleep", "dash"}  # the jobs themselves are not the worker


def tree_usage(roots: Sequence[int]) -> dict[int, tuple[int, float]]:
    """RSS in bytes and CPU seconds spent so far (its own, not its reaped children's) of
    ``roots`` and their descendants by pid, job processes left out."""
    tree, usage, todo = _children(), {}, list(roots)
    hz = os.sysconf("SC_CLK_TCK")
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() in JOB_COMMS:
                continue
            ticks = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    usage[pid] = (int(line.split()[1]) * 1024,
                                  (int(ticks[11]) + int(ticks[12])) / hz)  # utime, stime
        except OSError:
            continue
    return usage


def interpolate(samples: Sequence[tuple[float, ...]], t: float) -> list[float]:
    """The values of ``samples`` (time, value, ...; in time order) at ``t``, interpolated
    between the two samples around it."""
    for s0, s1 in itertools.pairwise(samples):
        if s0[0] <= t <= s1[0]:
            f = (t - s0[0]) / (s1[0] - s0[0]) if s1[0] > s0[0] else 0.0
            return [a + f * (b - a) for a, b in zip(s0[1:], s1[1:], strict=True)]
    raise BenchError(f"no sample around {t:.3f}")


class Sampler:
    """Takes a sample now, then every ``every`` seconds on a thread of its own, and a last
    one when stopped, so that the samples cover every moment from start to stop. A sample
    that fails ends the thread; what was read from the samples then raises BenchError
    (``checked``) instead of interpolating across the gap."""

    def __init__(self, every: float) -> None:
        self._every = every
        self._failed: str | None = None
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self._every) and self._sampled():
            pass

    def _sampled(self) -> bool:
        """One sample; False (the reason kept) if it failed."""
        try:
            self._sample()
        except Exception as exc:
            self._failed = f"{type(self).__name__} failed: {type(exc).__name__}: {exc}"
            return False
        return True

    def stop(self) -> None:
        """Stop sampling, with a last sample; never raises (the reads do)."""
        self._stop.set()
        self._thread.join()
        if self._failed is None:
            self._sampled()

    def checked(self) -> None:
        if self._failed is not None:
            raise BenchError(self._failed)


class TreeSampler(Sampler):
    """A worker's process tree, sampled every 0.1 s while it runs: the peak of its summed
    RSS, and the CPU its processes spent, by wall clock (``time.time()``). A process is
    counted from its second sample on: a child forked to spawn a job (or RQ's work horse)
    lives a few milliseconds and shares its parent's pages, so counting it would count
    the worker twice; and a process's CPU counts from the sample it was first seen in,
    so that a process that appears does not bring the CPU it spent before."""

    def __init__(self, roots: Sequence[int]) -> None:
        self.roots, self.peak = list(roots), 0
        self.cpu: list[tuple[float, float]] = []
        self._last: dict[int, tuple[int, float]] = {}
        super().__init__(0.1)

    def _sample(self) -> None:
        now, usage, last = time.time(), tree_usage(self.roots), self._last
        self.peak = max(self.peak, sum(rss for pid, (rss, _) in usage.items() if pid in last))
        spent = sum(cpu - last[pid][1] for pid, (_, cpu) in usage.items() if pid in last)
        self.cpu.append((now, (self.cpu[-1][1] if self.cpu else 0.0) + spent))
        self._last = usage

    def rss_peak(self) -> int:
        """The peak of the summed RSS, in bytes."""
        self.checked()
        return self.peak

    def cpu_between(self, t0: float, t1: float) -> float:
        """CPU seconds the tree's processes spent from ``t0`` to ``t1``."""
        self.checked()
        return interpolate(self.cpu, t1)[0] - interpolate(self.cpu, t0)[0]


def machine_cpu() -> tuple[float, float]:
    """CPU seconds the whole machine has spent busy and in all, summed over its CPUs
    (``/proc/stat``: everything but idle and iowait counts as busy)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz


class CpuSampler(Sampler):
    """The machine's busy CPU, sampled every 0.05 s with the wall clock (``time.time()``,
    the clock the jobs' start and finish times are on), so that the CPU a window of
    those times cost can be read afterwards: every process counts, the queue's, Redis's
    and the jobs' shells, which is what bounds a drain on a machine it keeps busy."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []
        super().__init__(0.05)

    def _sample(self) -> None:
        busy, total = machine_cpu()
        self.samples.append((time.time(), busy, total))

    def between(self, t0: float, t1: float) -> tuple[float, float]:
        """Busy CPU seconds from ``t0`` to ``t1``, and that as a share of all CPU then."""
        self.checked()
        (b0, a0), (b1, a1) = interpolate(self.samples, t0), interpolate(self.samples, t1)
        if a1 <= a0:
            raise BenchError("the CPU window is empty")
        return b1 - b0, (b1 - b0) / (a1 - a0)


def venv_python(peer: str) -> Path:
    """The peer's venv (created from its pinned requirements on first use, reused later)."""
    venv = VENVS / peer
    python = venv / "bin" / "python"
    reqs = PEERS / f"requirements-{peer}.txt"
    stamp = venv / "requirements.txt"
    if python.exists() and stamp.exists() and stamp.read_text() == reqs.read_text():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(reqs)],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"pip install -r {reqs.name} failed: {done.stderr.strip()[-300:]}")
    shutil.copyfile(reqs, stamp)
    return python


def peer_versions(peer: str) -> str:
    """``name==version`` of the pinned packages as installed in the peer's venv."""
    python = venv_python(peer)
    names = [line.split("==")[0].split("[")[0] for line in
             (PEERS / f"requirements-{peer}.txt").read_text().splitlines() if "==" in line]
    code = ("import importlib.metadata as m, sys; "
            "print(' '.join(f'{n}=={m.version(n)}' for n in sys.argv[1:]))")
    out = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of the repeats (what every table cell shows)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class RedisCost:
    """Commands and CPU a phase cost Redis: CONFIG RESETSTAT at the start, INFO at the end.
    The harness's own commands are taken out (INFO and CONFIG entirely, its polling by
    exact count); every command a script runs counts, as INFO commandstats does."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        client.config_resetstat()
        self.cpu = self._cpu()

    def _cpu(self) -> float:
        info: Any = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def finish(self, jobs: int, own: dict[str, int]) -> dict[str, Any]:
        cpu = self._cpu() - self.cpu
        stats: Any = self.client.info("commandstats")
        calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        for name, count in own.items():
            calls[name] = calls.get(name, 0) - count
        mine = {k: v for k, v in calls.items()
                if k.split("|")[0] not in ("info", "config") and v > 0}
        busiest = sorted(mine.items(), key=lambda kv: -kv[1])[:6]
        return {"commands_per_job": sum(mine.values()) / jobs,
                "redis_cpu_us_per_job": cpu * 1e6 / jobs,
                "busiest": {k: round(v / jobs, 2) for k, v in busiest}}
