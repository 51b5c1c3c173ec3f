"""One system through every figure, repeat after repeat; a figure that fails says why."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.harness.infra import (
    BenchError,
    CpuSampler,
    RedisCost,
    TreeSampler,
    Workers,
    percentile,
    spread,
)
from benchmarks.harness.systems import CONCURRENCY, System

SLEEP = 0.05
IDEAL_SLEEP_RATE = CONCURRENCY / SLEEP  # 160 jobs/s


@dataclass
class Sizes:
    enqueue_one: int = 1000
    drain: int = 2000
    sleep_jobs: int = 320
    latency_samples: int = 200
    cli_file: int = 100_000
    spawn: int = 2000
    promote: int = 100_000
    memory: int = 10_000
    repeats: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(enqueue_one=200, drain=500, sleep_jobs=160, latency_samples=30,
                   cli_file=2000, spawn=400, promote=10_000, memory=2000, repeats=1)


class Figures:
    """Every repeat's value of every figure, and the first error of those that failed."""

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.errors: dict[str, str] = {}
        self.notes: dict[str, Any] = {}

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def attempt(self, names: list[str], fn: Callable[[], None]) -> bool:
        try:
            fn()
            return True
        except BenchError as exc:
            for name in names:
                self.errors.setdefault(name, str(exc))
        except Exception as exc:  # a peer's surprise must not end the whole run
            for name in names:
                self.errors.setdefault(name, f"{type(exc).__name__}: {exc}")
        return False


def drain_timeout(n: int) -> float:
    return max(60.0, n / 20)


def one_repeat(system: System, sizes: Sizes, figs: Figures) -> None:
    r = system.redis
    r.flushall()

    def enqueue_one() -> None:
        batch = system.enqueue(sizes.enqueue_one, "one")
        figs.add("enqueue_one", batch.n / batch.seconds)
    figs.attempt(["enqueue_one"], enqueue_one)
    r.flushall()

    def extra() -> None:
        for name, rate in system.extra_bulk(sizes.cli_file).items():
            figs.add(f"enqueue_{name}", rate)
        r.flushall()
    figs.attempt(["enqueue_cli_file"], extra)

    workers: Workers | None = None
    try:
        batch = system.enqueue(sizes.drain, "bulk")
        figs.add("enqueue_bulk", batch.n / batch.seconds)
        cost = RedisCost(r)
        system.own.clear()
        workers = system.start_workers()
        sampler = TreeSampler([p.pid for p in workers.procs])
        cpu = CpuSampler()
        try:
            system.wait_done(batch, drain_timeout(batch.n), workers)
        finally:
            sampler.stop()
            cpu.stop()
        spent = cost.finish(batch.n, dict(system.own))
        timings = system.collect(batch)
        figs.add("drain", timings.rate())

        def drain_cpu() -> None:
            began, ended, jobs = timings.steady()
            busy, share = cpu.between(began, ended)
            figs.add("drain_cpu_ms_per_job", busy * 1e3 / jobs)
            figs.add("drain_busy_pct", 100 * share)
            figs.add("worker_cpu_us_per_job", sampler.cpu_between(began, ended) * 1e6 / jobs)
        figs.attempt(["drain_cpu_ms_per_job", "drain_busy_pct", "worker_cpu_us_per_job"],
                     drain_cpu)
        figs.notes["start_field"] = timings.start_field
        figs.add("commands_per_job", spent["commands_per_job"])
        figs.add("redis_cpu_us_per_job", spent["redis_cpu_us_per_job"])
        figs.notes["busiest_commands_per_job"] = spent["busiest"]
        figs.attempt(["rss_mb"], lambda: figs.add("rss_mb", sampler.rss_peak() / 2**20))
        running_phases(system, sizes, figs, workers)
    except BenchError as exc:
        for name in ("enqueue_bulk", "drain", "drain_cpu_ms_per_job", "drain_busy_pct",
                     "worker_cpu_us_per_job", "commands_per_job", "redis_cpu_us_per_job",
                     "rss_mb", "drain_live", "live_from_enqueue", "enqueue_live", "sleep",
                     "latency_p50", "latency_p95"):
            figs.errors.setdefault(name, str(exc))
    finally:
        if workers is not None:
            workers.stop()
        system.cleanup()
        r.flushall()


def running_phases(system: System, sizes: Sizes, figs: Figures, workers: Workers) -> None:
    """What needs the workers up: live drain, sleep jobs, idle latency."""

    def live() -> None:
        # The enqueuer runs one job at a time while the workers drain what it sent. Its
        # rate meanwhile is kept too: a live drain equal to it was bound by the enqueuer.
        batch = system.enqueue(sizes.drain, "one")
        system.wait_done(batch, drain_timeout(batch.n), workers)
        timings = system.collect(batch)
        figs.add("drain_live", timings.rate())
        figs.add("live_from_enqueue", timings.rate_since(batch.began))
        figs.add("enqueue_live", batch.n / batch.seconds)
    figs.attempt(["drain_live", "live_from_enqueue", "enqueue_live"], live)

    def sleep() -> None:
        batch = system.enqueue(sizes.sleep_jobs, "bulk", f"sleep {SLEEP}")
        system.wait_done(batch, drain_timeout(batch.n), workers)
        rate = system.collect(batch).rate()
        figs.add("sleep", rate)
        figs.add("sleep_pct_ideal", 100 * rate / IDEAL_SLEEP_RATE)
    figs.attempt(["sleep", "sleep_pct_ideal"], sleep)

    def latency() -> None:
        time.sleep(0.5)  # every worker thread idle again
        lat, start_field = system.latency(sizes.latency_samples)
        if not lat:
            raise BenchError("no latency sample")
        figs.add("latency_p50", statistics.median(lat))
        figs.add("latency_p95", percentile(lat, 0.95))
        figs.notes["latency_samples"] = len(lat)
        figs.notes["latency_start_field"] = start_field
    figs.attempt(["latency_p50", "latency_p95"], latency)


def run_system(system: System, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    figs = Figures()
    started = time.monotonic()
    if figs.attempt(["all"], system.prepare):
        for rep in range(sizes.repeats):
            log(f"  {system.name}: repeat {rep + 1}/{sizes.repeats}")
            one_repeat(system, sizes, figs)
    return {"name": system.name, "label": system.label, "family": system.family,
            "model": system.model, "processes": system.processes, "threads": system.threads,
            "figures": {k: spread(v) for k, v in figs.values.items()},
            "errors": figs.errors, "notes": figs.notes,
            "seconds": time.monotonic() - started}
