"""100,000 due retries promoted by a real ``queuectl-scheduler``: how long, and the longest
single Redis command meanwhile.

    python benchmarks/promote.py                       # starts its own redis-server
    python benchmarks/promote.py --jobs 100000 --repeats 3
    python benchmarks/promote.py --redis-url redis://127.0.0.1:6379/0
    python benchmarks/promote.py --batch 100           # QUEUECTL_SCHEDULER_BATCH

The jobs are made the way a worker makes them: enqueued, fetched and failed through
``enqueue.lua``, ``fetch.lua`` and ``fail.lua`` (a back-off of 1 ms, so every retry is
due by the time the scheduler starts). Then a ``queuectl-scheduler`` process is started
and the retry set polled (ZCARD) until it is empty. Reported: seconds from the first
promotion to an empty set (``promote_seconds``), seconds from the scheduler's start
(``since_start_seconds``, includes the interpreter's start-up), and from SLOWLOG (every
command logged during the run: slowlog-log-slower-than 0) the longest single command in
ms and its name, and the promote calls' total time per job in µs (``promote_usec_per_job``:
Redis's own time in ``promote.lua``, the figure least moved by a busy machine's round
trips). Numbers are printed, never asserted; the benchmark uses its own key
prefix and deletes its keys. ``measure(redis_url)`` is the entry point for a harness.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec
from queuectl.core.policy import Policy
from queuectl.core.store import Store

WORKER = "bench-promote"
POLL = 0.005


def make_due_retries(store: Store, n: int) -> None:
    """Enqueue ``n`` jobs, lease and fail each once: ``n`` retries due 1 ms later."""
    store.enqueue_many(JobSpec(command="false") for _ in range(n))
    made = 0
    while made < n:
        job = store.fetch(WORKER, ["default"])
        if job is None:
            break
        store.fail(job, WORKER, b"", 0, 1, "exit code 1")
        made += 1
    # Nothing is in flight any more: the worker never existed as far as reaping goes.
    store.redis.delete(store.keys.inflight(WORKER))


def slowlog(client: redis.Redis, scripts: dict[str, str]) -> dict[str, Any]:
    """The longest command in the slow log (ms) and its name (a script's by its SHA), and
    the promote calls' count, median and 99th percentile (ms). Redis times a command by
    the wall clock: on a loaded machine a descheduled server inflates the longest one."""
    entries: Any = client.execute_command("SLOWLOG", "GET", "-1")  # type: ignore[no-untyped-call]
    best = (0.0, "")
    promotes: list[float] = []
    for entry in entries:
        usec, command = int(entry[2]), entry[3]
        name = command[0].decode().upper() if command else "?"
        if name == "EVALSHA" and len(command) > 1:
            name = f"EVALSHA {scripts.get(command[1].decode(), command[1].decode())}"
        if name == "EVALSHA promote":
            promotes.append(usec / 1000)
        if usec / 1000 > best[0]:
            best = (usec / 1000, name)
    promotes.sort()
    return {"longest_command_ms": round(best[0], 3), "longest_command": best[1],
            "promote_calls": len(promotes), "promote_ms_total": round(sum(promotes), 1),
            "promote_call_p50_ms": round(statistics.median(promotes), 3) if promotes else None,
            "promote_call_p99_ms": (round(promotes[int(len(promotes) * 0.99) - 1], 3)
                                    if promotes else None)}


def measure(redis_url: str, jobs: int = 100_000, timeout: float = 300.0,
            batch: int | None = None) -> dict[str, Any]:
    """Promote ``jobs`` due retries with a real scheduler on ``redis_url``; the figures."""
    prefix = f"benchpromote{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    store = Store(client, Keys(prefix), Policy(backoff_base=0.001, max_retries=3))
    store.load_scripts()
    keys = store.keys
    t0 = time.perf_counter()
    make_due_retries(store, jobs)
    setup = time.perf_counter() - t0
    old: dict[str, Any] = {k: client.config_get(k)[k]
                           for k in ("slowlog-log-slower-than", "slowlog-max-len")}
    client.config_set("slowlog-max-len", max(1024, jobs * 4))
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    env = {**os.environ, "QUEUECTL_REDIS_URL": redis_url, "QUEUECTL_KEY_PREFIX": prefix,
           "QUEUECTL_METRICS_PORT": "0", "QUEUECTL_LOG_LEVEL": "WARNING",
           "OTEL_SDK_DISABLED": "true"}
    if batch is not None:
        env["QUEUECTL_SCHEDULER_BATCH"] = str(batch)
    started = time.perf_counter()
    proc = subprocess.Popen([str(Path(sys.executable).parent / "queuectl-scheduler")], env=env)
    first: float | None = None
    try:
        while True:
            left = int(client.zcard(keys.retry_queue))
            now = time.perf_counter()
            if first is None and left < jobs:
                first = now
            if left == 0:
                break
            if now - started > timeout or proc.poll() is not None:
                raise RuntimeError(f"{left} retries still due after {now - started:.1f}s "
                                   f"(scheduler exit code {proc.poll()})")
            time.sleep(POLL)
        done = time.perf_counter()
    finally:
        proc.terminate()
        proc.wait()
        client.config_set("slowlog-log-slower-than", old["slowlog-log-slower-than"])
    log = slowlog(client, {s.sha: n for n, s in store._scripts.items()})
    client.config_set("slowlog-max-len", old["slowlog-max-len"])
    pending = int(client.llen(keys.queue("default")))
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()
    return {"jobs": jobs, "pending_after": pending, "setup_seconds": round(setup, 2),
            "promote_seconds": round(done - (first or started), 3),
            "since_start_seconds": round(done - started, 3),
            "promote_usec_per_job": round(log["promote_ms_total"] * 1000 / jobs, 2), **log}


@contextlib.contextmanager
def redis_server(url: str | None) -> Iterator[str]:
    """``url`` as given, or a throwaway redis-server (no persistence) on a free port."""
    if url:
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH; pass --redis-url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly",
                                 "no", "--dir", tmp], stdout=subprocess.DEVNULL)
        local = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(local)
        for _ in range(500):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.01)
        client.close()
        try:
            yield local
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--redis-url", default=os.environ.get("QUEUECTL_REDIS_URL"))
    parser.add_argument("--batch", type=int, default=None,
                        help="QUEUECTL_SCHEDULER_BATCH for the scheduler (default: its own)")
    args = parser.parse_args()
    with redis_server(args.redis_url) as url:
        runs = []
        for _ in range(args.repeats):
            runs.append(measure(url, args.jobs, batch=args.batch))
            print(json.dumps(runs[-1]), flush=True)
        for name in ("promote_seconds", "since_start_seconds", "longest_command_ms",
                     "promote_usec_per_job",
                     "promote_call_p50_ms", "promote_call_p99_ms"):
            values = [r[name] for r in runs]
            print(f"{name}: median {statistics.median(values)} "
                  f"(min {min(values)}, max {max(values)})")


if __name__ == "__main__":
    main()
