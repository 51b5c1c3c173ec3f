"""arq worker settings, job and driver: the worker is ``arq arq_peer.WorkerSettings`` with
BENCH_REDIS_URL and BENCH_MAX_JOBS set; the driver is ``python arq_peer.py ACTION --url URL``."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job
from common import LATENCY_BUDGET, OUTPUT_CAP, emit, parser, read_handles, summarize, write_handles

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


async def run(ctx: dict[str, Any], command: str) -> dict[str, Any]:
    spawned_at = time.time()
    proc = await asyncio.create_subprocess_shell(command, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return {"exit_code": proc.returncode, "stdout": out[-OUTPUT_CAP:].decode(errors="replace"),
            "stderr": err[-OUTPUT_CAP:].decode(errors="replace"),
            "spawned_at": spawned_at, "finished_at": time.time()}


class WorkerSettings:
    functions: ClassVar[list[Any]] = [run]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_MAX_JOBS", "8"))
    keep_result = 3600


async def enqueue(pool: ArqRedis, n: int, mode: str, command: str) -> list[str]:
    if mode == "one":
        return [(await pool.enqueue_job("run", command)).job_id
                for _ in range(n)]
    # arq has no bulk enqueue: concurrent enqueue_job calls, 100 at a time.
    ids: list[str] = []
    for start in range(0, n, 100):
        jobs = await asyncio.gather(*(pool.enqueue_job("run", command)
                                      for _ in range(start, min(n, start + 100))))
        ids += [j.job_id for j in jobs if j is not None]
    return ids


async def result_of(pool: ArqRedis, job_id: str, timeout: float = 30) -> dict[str, Any]:
    value: dict[str, Any] = await Job(job_id, pool).result(timeout=timeout, poll_delay=0.001)
    return value


async def amain() -> None:
    args = parser().parse_args()
    pool = await create_pool(RedisSettings.from_dsn(args.url))
    if args.action == "enqueue":
        began, t0 = time.time(), time.perf_counter()
        ids = await enqueue(pool, args.n, args.mode, args.command)
        seconds = time.perf_counter() - t0
        write_handles(args.handles, ((f"arq:result:{i}", i) for i in ids))
        emit({"seconds": seconds, "began": began})
    elif args.action == "collect":
        emit(summarize([await result_of(pool, i, 5) for i in read_handles(args.handles)]))
    elif args.action == "latency":
        lat: list[float] = []
        deadline = time.monotonic() + LATENCY_BUDGET
        for _ in range(args.samples):
            if time.monotonic() > deadline:
                break
            t0 = time.time()
            job = await pool.enqueue_job("run", args.command)
            assert job is not None
            res = await result_of(pool, job.job_id)
            lat.append((res["spawned_at"] - t0) * 1000)
            await asyncio.sleep(0.01)
        emit({"latencies_ms": lat})
    await pool.aclose()


if __name__ == "__main__":
    asyncio.run(amain())
