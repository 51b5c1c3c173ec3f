"""Throughput and pickup latency of one QueueCTL worker process running `true` jobs.

    python benchmarks/throughput.py --jobs 5000 --concurrency 8
    python benchmarks/throughput.py --workers 2 --redis-cost   # + Redis commands/CPU per job
    QUEUECTL_REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/throughput.py

Prints: enqueue rate (pipelined client), drain rate (jobs/s from the first
start to the last finish, as recorded in the job records by Redis's clock),
and the pickup latency of an idle worker (enqueue -> started_at, when the worker took
the job, and enqueue -> spawned_at, when its command was spawned; p50/p99).
Numbers are printed, never asserted. Uses its own key prefix and cleans up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from queuectl.core.client import Client
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import Settings


def redis_cpu(client: Client) -> float:
    """Seconds of CPU the Redis server has used (user + system, main thread and all)."""
    info: Any = client.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def commandstats(client: Client) -> dict[str, tuple[int, int]]:
    """INFO commandstats as command -> (calls, usec)."""
    stats: Any = client.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()}


def redis_cost(client: Client, n: int, cpu: float, enqueued: dict[str, tuple[int, int]],
               cpu_enqueued: float) -> None:
    """What the jobs cost Redis, from INFO commandstats (reset before the enqueue): calls
    per job (the commands inside scripts count too) and CPU per job, for enqueue and
    worker together, then for the worker alone (the counts taken after the enqueue are
    subtracted)."""
    stats = commandstats(client)
    used = redis_cpu(client) - cpu
    for what, base, spent in (("enqueue + worker", {}, used),
                              ("worker only", enqueued, used - cpu_enqueued)):
        calls = {k: c - base.get(k, (0, 0))[0] for k, (c, _) in stats.items()}
        # A script's usec includes the commands inside it, which are counted on their own.
        script_usec = stats.get("evalsha", (0, 0))[1] - base.get("evalsha", (0, 0))[1]
        print(f"redis cost ({what}): {calls.get('evalsha', 0) / n:.2f} scripts (EVALSHA) per "
              f"job, {sum(calls.values()) / n:.1f} commands per job counting those inside "
              f"scripts; {script_usec / n:.0f} us in scripts and {spent * 1e6 / n:.0f} us of "
              f"Redis CPU per job (= at most ~{n / spent:,.0f} jobs/s on one Redis core)")
        busiest = sorted(calls.items(), key=lambda kv: -kv[1])[:10]
        print("  busiest commands per job: "
              + ", ".join(f"{k} {c / n:.2f}" for k, c in busiest if c))


def own_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used itself, not counting its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drain(client: Client, n: int, concurrency: int, env: dict[str, str], workers: int,
          cost: bool) -> None:
    if cost:
        client.redis.config_resetstat()
        cpu = redis_cpu(client)
    t0 = time.perf_counter()
    client.enqueue_many(JobSpec(command="true") for _ in range(n))
    t_enq = time.perf_counter() - t0
    print(f"enqueue: {n} jobs in {t_enq:.2f}s = {n / t_enq:,.0f} jobs/s")
    enqueued = commandstats(client) if cost else {}
    cpu_enqueued = redis_cpu(client) - cpu if cost else 0.0
    procs = [subprocess.Popen(
        [str(Path(sys.executable).parent / "queuectl-worker")],
        env={**env, "QUEUECTL_CONCURRENCY": str(concurrency), "QUEUECTL_LOG_LEVEL": "WARNING",
             "QUEUECTL_METRICS_PORT": "0"},
    ) for _ in range(workers)]
    try:
        # One ZCARD a poll: the poll must not weigh in the cost per job.
        while client.count_jobs(JobState.COMPLETED).total < n:
            time.sleep(0.1)
        worker_cpu = sum(own_cpu(worker.pid) for worker in procs)
    finally:
        for worker in procs:
            worker.terminate()
        for worker in procs:
            worker.wait()
    if cost:
        redis_cost(client, n, cpu, enqueued, cpu_enqueued)
    jobs = client.list_jobs(limit=n).jobs
    first = min(j.started_at or 0 for j in jobs)
    last = max(j.finished_at or 0 for j in jobs)
    print(f"drain: {n} `true` jobs at concurrency {concurrency} in {last - first:.2f}s "
          f"= {n / (last - first):,.0f} jobs/s ({workers} worker process(es)); "
          f"{worker_cpu * 1e6 / n:.0f} us of worker CPU per job (its own, not the jobs')")


def pickup(client: Client, samples: int, env: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "queuectl-worker")],
        env={**env, "QUEUECTL_CONCURRENCY": "2", "QUEUECTL_LOG_LEVEL": "WARNING",
             "QUEUECTL_IDLE_WAIT": "30"},
    )
    lat, spawn = [], []
    try:
        time.sleep(1.0)
        for _ in range(samples):
            job = client.enqueue("true")
            done = client.wait([job.id], timeout=10, poll=0.005)[job.id].job
            assert done is not None
            lat.append(((done.started_at or 0) - done.created_at) * 1000)
            spawn.append(((done.spawned_at or 0) - done.created_at) * 1000)
            time.sleep(0.02)  # let the threads go idle again
    finally:
        worker.terminate()
        worker.wait()
    for what, values in (("started_at", lat), ("spawned_at", spawn)):
        values.sort()
        print(f"idle pickup latency (enqueue -> {what}, {samples} samples): "
              f"p50 {statistics.median(values):.2f} ms, "
              f"p99 {values[int(len(values) * 0.99) - 1]:.2f} ms, max {values[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--redis-cost", action="store_true",
                        help="print Redis commands and CPU per job (INFO commandstats; "
                             "resets the server's statistics)")
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "QUEUECTL_KEY_PREFIX": prefix,
           "QUEUECTL_LOG_DIR": f"/tmp/{prefix}-logs"}
    os.environ.update(env)
    client = Client.connect(Settings())
    try:
        drain(client, args.jobs, args.concurrency, env, args.workers, args.redis_cost)
        pickup(client, args.samples, env)
    finally:
        for key in client.redis.scan_iter(f"{prefix}:*", count=1000):
            client.redis.delete(key)
        subprocess.run(["rm", "-rf", f"/tmp/{prefix}-logs"], check=False)


if __name__ == "__main__":
    main()
