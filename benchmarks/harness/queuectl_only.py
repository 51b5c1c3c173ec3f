"""Figures only QueueCTL has: CLI start-up, 100,000 due jobs promoted by the scheduler,
Redis memory per pending and per finished job."""

from __future__ import annotations

import statistics
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness.infra import BenchError, Workers, wait_until
from benchmarks.harness.systems import QueueCtlSystem

# What any CLI built on QueueCTL's chosen libraries pays before its own first line:
# Typer's parser (which imports pydantic), pydantic-settings and redis-py.
IMPORT_FLOOR = "import typer.main, pydantic_settings, redis"


def cli_startup(system: QueueCtlSystem, runs: int = 10) -> dict[str, float]:
    """Median wall time of ``queuectl enqueue -- true`` and ``queuectl status``, in ms, and,
    with the same interpreter, of Python doing nothing and of importing the libraries
    the CLI is built on (the floor under any command)."""
    out: dict[str, float] = {}
    python = str(system.bin / "python")
    for name, argv in (("cli_enqueue_ms", [str(system.bin / "queuectl"), "enqueue", "--quiet",
                                           "--", "true"]),
                       ("cli_status_ms", [str(system.bin / "queuectl"), "status"]),
                       ("cli_python_ms", [python, "-c", "pass"]),
                       ("cli_import_floor_ms", [python, "-c", IMPORT_FLOOR])):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
            times.append((time.perf_counter() - t0) * 1000)
            if done.returncode != 0:
                raise BenchError(f"{' '.join(argv[1:3])} exited {done.returncode}: "
                                 f"{done.stderr.decode(errors='replace').strip()[:200]}")
        out[name] = statistics.median(times)
    return out


def server_time(system: QueueCtlSystem) -> float:
    secs, usecs = system.redis.time()
    return float(secs) + usecs / 1e6


def promote_due(system: QueueCtlSystem, n: int) -> dict[str, Any]:
    """``n`` due jobs in the delayed set (promote.lua moves due retries and due delayed
    jobs alike), then a scheduler started: seconds from its first promotion until the set
    is empty, and the longest single Redis call in that time (SLOWLOG, threshold 0)."""
    from queuectl.core.models import JobSpec

    r, keys = system.redis, system.client.keys
    r.flushall()
    last_due, lead = 0.0, 3.0
    for start in range(0, n, 2000):
        # Each chunk is due well after it is stored (so it is stored as scheduled, even on
        # a busy machine: the lead follows the time a chunk takes), and all of them are due
        # soon after the last chunk.
        t0 = time.monotonic()
        last_due = server_time(system) + lead
        system.client.enqueue_many(
            JobSpec(command="true", queue="promoted",
                    run_at=datetime.fromtimestamp(last_due, UTC))
            for _ in range(min(2000, n - start)))
        lead = max(lead, 5 * (time.monotonic() - t0))
    if r.zcard(keys.delayed) != n:
        raise BenchError(f"{r.zcard(keys.delayed)} of {n} jobs scheduled")
    wait_until(lambda: server_time(system) > last_due + 0.1, 30, "every job due")
    r.config_set("slowlog-log-slower-than", 0)
    r.slowlog_reset()
    workers = Workers([[str(system.bin / "queuectl-scheduler")]],
                      {**system.envs_for_services(), "QUEUECTL_METRICS_PORT": "0"},
                      system.workdir, system.workdir / "scheduler.log")
    started = time.monotonic()
    try:
        first: list[float] = []

        def check() -> bool:
            workers.check_alive()
            left = int(r.zcard(keys.delayed))
            if left < n and not first:
                first.append(time.monotonic())
            return left == 0
        wait_until(check, 120, f"{n} due jobs promoted", interval=0.002)
        took, from_start = time.monotonic() - first[0], time.monotonic() - started
        entries: Any = r.slowlog_get(100000)
    finally:
        r.config_set("slowlog-log-slower-than", 10000)
        workers.stop()
    calls = [e for e in entries
             if not command_of(e).upper().startswith(("ZCARD", "SLOWLOG", "CONFIG"))]
    if not calls:
        raise BenchError("SLOWLOG recorded no call of the scheduler")
    longest = max(calls, key=lambda e: int(e["duration"]))
    r.flushall()
    return {"promote_seconds": took, "promote_seconds_from_start": from_start,
            "promote_longest_call_ms": int(longest["duration"]) / 1000,
            "promote_longest_command": script_name(command_of(longest))}


def script_name(command: str) -> str:
    """``EVALSHA <sha>`` with the name of the QueueCTL script it ran."""
    import hashlib

    from queuectl.core import lua

    names = {hashlib.sha1(lua.script_source(n).encode()).hexdigest(): n
             for n in lua.script_names()}
    parts = command.split()
    if len(parts) > 1 and parts[0].upper() == "EVALSHA" and parts[1] in names:
        return f"EVALSHA {names[parts[1]]}.lua"
    return command[:60]


def command_of(entry: Any) -> str:
    command = entry["command"]
    return command.decode(errors="replace") if isinstance(command, bytes) else str(command)


def memory_per_job(system: QueueCtlSystem, n: int) -> dict[str, float]:
    """used_memory per job after enqueueing ``n`` jobs, and after running them all."""
    r = system.redis
    r.flushall()

    def used() -> int:
        info: Any = r.info("memory")
        return int(info["used_memory"])
    base = used()
    batch = system.enqueue(n, "bulk")
    pending = used()
    workers = system.start_workers()
    try:
        system.wait_done(batch, max(60.0, n / 20), workers)
    finally:
        workers.stop()
    finished = used()
    system.cleanup()
    r.flushall()
    return {"memory_pending_bytes": (pending - base) / n,
            "memory_finished_bytes": (finished - base) / n}
