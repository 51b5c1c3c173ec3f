"""Throughput and pickup latency of one QueueCTL worker process running `true` jobs.

    python benchmarks/throughput.py --jobs 5000 --concurrency 8
    QUEUECTL_REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/throughput.py

Prints: enqueue rate (pipelined client), drain rate (jobs/s from the first
start to the last finish, as recorded in the job records by Redis's clock),
and the pickup latency of an idle worker (enqueue -> started_at, p50/p99).
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

from queuectl.core.client import Client
from queuectl.core.models import JobSpec
from queuectl.core.settings import Settings


def drain(client: Client, n: int, concurrency: int, env: dict[str, str]) -> None:
    t0 = time.perf_counter()
    client.enqueue_many(JobSpec(command="true") for _ in range(n))
    t_enq = time.perf_counter() - t0
    print(f"enqueue: {n} jobs in {t_enq:.2f}s = {n / t_enq:,.0f} jobs/s")
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "queuectl-worker")],
        env={**env, "QUEUECTL_CONCURRENCY": str(concurrency), "QUEUECTL_LOG_LEVEL": "WARNING"},
    )
    try:
        while client.status().states["completed"] < n:
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.wait()
    jobs = client.list_jobs(limit=n).jobs
    first = min(j.started_at or 0 for j in jobs)
    last = max(j.finished_at or 0 for j in jobs)
    print(f"drain: {n} `true` jobs at concurrency {concurrency} in {last - first:.2f}s "
          f"= {n / (last - first):,.0f} jobs/s (one worker process)")


def pickup(client: Client, samples: int, env: dict[str, str]) -> None:
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "queuectl-worker")],
        env={**env, "QUEUECTL_CONCURRENCY": "2", "QUEUECTL_LOG_LEVEL": "WARNING",
             "QUEUECTL_IDLE_WAIT": "30"},
    )
    lat = []
    try:
        time.sleep(1.0)
        for _ in range(samples):
            job = client.enqueue("true")
            done = client.wait([job.id], timeout=10, poll=0.005)[job.id].job
            assert done is not None
            lat.append(((done.started_at or 0) - done.created_at) * 1000)
            time.sleep(0.02)  # let the threads go idle again
    finally:
        worker.terminate()
        worker.wait()
    lat.sort()
    print(f"idle pickup latency (enqueue -> started_at, {samples} samples): "
          f"p50 {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat) * 0.99) - 1]:.2f} ms, "
          f"max {lat[-1]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "QUEUECTL_KEY_PREFIX": prefix,
           "QUEUECTL_LOG_DIR": f"/tmp/{prefix}-logs"}
    os.environ.update(env)
    client = Client.connect(Settings())
    try:
        drain(client, args.jobs, args.concurrency, env)
        pickup(client, args.samples, env)
    finally:
        for key in client.redis.scan_iter(f"{prefix}:*", count=1000):
            client.redis.delete(key)
        subprocess.run(["rm", "-rf", f"/tmp/{prefix}-logs"], check=False)


if __name__ == "__main__":
    main()
