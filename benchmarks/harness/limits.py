"""The no-queue limits: how fast this machine spawns ``sh -c true`` from Python at the
benchmark's concurrency (with pipes, as a job's output is captured, and the cheapest way:
``posix_spawn`` without pipes), the machine's and the spawners' own CPU per spawn, what
share of the ideal rate ``sh -c 'sleep 0.05'`` reaches spawned the same way at that
concurrency, and how many Redis round trips one client makes."""

from __future__ import annotations

import functools
import multiprocessing
import os
import resource
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import redis

from benchmarks.harness.infra import BenchError, machine_cpu, spread

ARGV = ["/bin/sh", "-c", "true"]
SLEEP = 0.05
SLEEP_ARGV = ["/bin/sh", "-c", f"sleep {SLEEP}"]
SLEEP_RUNS = 40  # per thread: the benchmark's 320 sleep jobs over 8 threads


def spawn_piped(argv: list[str] = ARGV) -> None:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    proc.communicate()


def spawn_posix() -> None:
    # posix_spawn is vfork-based in glibc: no copy of the parent's page tables, no pipes.
    pid = os.posix_spawn(ARGV[0], ARGV, os.environ)
    os.waitpid(pid, 0)


SPAWNERS: dict[str, Callable[[], None]] = {"piped": spawn_piped, "posix_spawn": spawn_posix}


def _in_threads(fn: Callable[[], None], threads: int, runs: int) -> None:
    """``fn`` ``runs`` times in each of ``threads`` threads. BenchError if a call failed:
    a thread that died would leave a rate counted from spawns that never happened."""
    failed: list[Exception] = []

    def loop() -> None:
        try:
            for _ in range(runs):
                fn()
        except Exception as exc:
            failed.append(exc)
    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failed:
        raise BenchError(f"a spawn failed: {type(failed[0]).__name__}: {failed[0]}")


def _threads(kind: str, threads: int, per_thread: int) -> float:
    """Spawns from ``threads`` threads; returns this process's own CPU seconds meanwhile
    (not its children's: the shells)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    _in_threads(SPAWNERS[kind], threads, per_thread)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _spawner(out: Connection, kind: str, threads: int, per_thread: int) -> None:
    """A spawning process: sends its own CPU seconds, or why it failed."""
    try:
        out.send(_threads(kind, threads, per_thread))
    except BenchError as exc:
        out.send(str(exc))


def _own_cpu(pipe: Connection) -> float:
    try:
        reply = pipe.recv()
    except EOFError:
        raise BenchError("a spawning process died") from None
    if isinstance(reply, str):
        raise BenchError(reply)
    return float(reply)


@dataclass
class Spawned:
    """What a no-queue spawn run measured: spawns per second, and per spawn the machine's
    busy CPU seconds (spawners and shells) and the spawning processes' own."""

    rate: float
    machine_cpu: float
    own_cpu: float


def spawn_rate(kind: str, processes: int, threads: int, total: int) -> Spawned:
    """``sh -c true`` from ``processes`` x ``threads`` spawning ``total`` in all."""
    per_thread = max(1, total // (processes * threads))
    ctx = multiprocessing.get_context("fork")
    busy0, _ = machine_cpu()
    t0 = time.perf_counter()
    if processes == 1:
        own = _threads(kind, threads, per_thread)
    else:
        pipes = [ctx.Pipe(duplex=False) for _ in range(processes)]
        procs = [ctx.Process(target=_spawner, args=(w, kind, threads, per_thread))
                 for _, w in pipes]
        for p in procs:
            p.start()
        for _, w in pipes:
            w.close()  # the child's copy is the only writer left: its death reads as EOF
        try:
            own = sum(_own_cpu(r) for r, _ in pipes)
        finally:
            for p in procs:
                p.join()
    seconds = time.perf_counter() - t0
    n = per_thread * processes * threads
    return Spawned(n / seconds, (machine_cpu()[0] - busy0) / n, own / n)


def sleep_pct_ideal(threads: int = 8) -> float:
    """``sh -c 'sleep 0.05'`` with pipes from ``threads`` threads, SLEEP_RUNS each, as a
    percentage of the ideal rate (threads / 0.05 s): the ceiling of the benchmark's
    ``sleep 0.05`` figure on this machine, before any queue."""
    t0 = time.perf_counter()
    _in_threads(lambda: spawn_piped(SLEEP_ARGV), threads, SLEEP_RUNS)
    rate = threads * SLEEP_RUNS / (time.perf_counter() - t0)
    return 100 * rate * SLEEP / threads


def redis_round_trips(url: str, seconds: float = 2.0) -> float:
    client = redis.Redis.from_url(url)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            client.ping()
        n += 100
    rate = n / (time.perf_counter() - t0)
    client.close()
    return rate


def measure(url: str, total: int, repeats: int) -> dict[str, Any]:
    values: dict[str, list[float]] = {}
    errors: dict[str, str] = {}

    def attempt(names: list[str], fn: Callable[[], list[float]]) -> None:
        try:
            for name, value in zip(names, fn(), strict=True):
                values.setdefault(name, []).append(value)
        except BenchError as exc:
            for name in names:
                errors.setdefault(name, str(exc))

    def spawn(kind: str, processes: int, threads: int) -> list[float]:
        done = spawn_rate(kind, processes, threads, total)
        return [done.rate, done.machine_cpu * 1e3, done.own_cpu * 1e6]

    for _ in range(repeats):
        for kind in SPAWNERS:
            for processes, threads in ((1, 8), (2, 4)):
                name = f"spawn_{kind}_{processes}x{threads}"
                attempt([name, f"{name}_cpu_ms", f"{name}_own_us"],
                        functools.partial(spawn, kind, processes, threads))
        attempt(["sleep_pct_ideal_1x8"], lambda: [sleep_pct_ideal()])
        values.setdefault("redis_ping", []).append(redis_round_trips(url))
    return {"figures": {k: spread(v) for k, v in values.items()}, "errors": errors}
