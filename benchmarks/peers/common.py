"""What every peer driver shares (standard library only: it runs in each peer's own venv).

A driver is run by the harness as ``<peer venv>/bin/python benchmarks/peers/<peer>.py ACTION``
and prints one JSON document on stdout. Its job function runs the command the way a
production task would: through ``sh -c``, output captured, and the exit code, output and
the moment of the spawn returned as the job's result, stored by the peer's own backend.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

OUTPUT_CAP = 65536  # the same tail QueueCTL keeps in Redis by default
# A peer that polls slowly (arq: every 0.5 s) gets fewer samples rather than a longer run.
LATENCY_BUDGET = 6.0


def run_command(command: str) -> dict[str, Any]:
    """Run ``command`` through ``sh -c`` with its output captured; the result a peer stores."""
    spawned_at = time.time()  # "start" is the moment of the spawn, for every system
    proc = subprocess.run(command, shell=True, capture_output=True, check=False)
    return {"exit_code": proc.returncode,
            "stdout": proc.stdout[-OUTPUT_CAP:].decode(errors="replace"),
            "stderr": proc.stderr[-OUTPUT_CAP:].decode(errors="replace"),
            "spawned_at": spawned_at, "finished_at": time.time()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("action", choices=["enqueue", "collect", "latency", "worker"])
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, default=0)
    p.add_argument("--mode", choices=["one", "bulk"], default="one")
    p.add_argument("--command", default="true")
    p.add_argument("--handles", type=Path, help="one JSON line per job: {key, handle}")
    p.add_argument("--samples", type=int, default=0)
    p.add_argument("--variant", default="")
    p.add_argument("--concurrency", type=int, default=8)
    return p


def emit(doc: dict[str, Any]) -> None:
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")


def write_handles(path: Path, rows: Iterable[tuple[str, Any]]) -> None:
    """Each job's result key (the harness counts finished jobs with one EXISTS) and handle."""
    with path.open("w") as fh:
        for key, handle in rows:
            fh.write(json.dumps({"key": key, "handle": handle}) + "\n")


def timed_enqueue(n: int, mode: str, handles: Path, one: Callable[[], Any],
                  bulk: Callable[[int], list[Any]],
                  key_of: Callable[[Any], tuple[str, Any]]) -> None:
    """Enqueue ``n`` jobs one call at a time or with the peer's bulk form, print the
    seconds it took, the wall-clock time it began, and write each job's result key and
    handle."""
    began, t0 = time.time(), time.perf_counter()
    sent = [one() for _ in range(n)] if mode == "one" else bulk(n)
    seconds = time.perf_counter() - t0
    write_handles(handles, map(key_of, sent))
    emit({"seconds": seconds, "began": began})


def read_handles(path: Path) -> list[Any]:
    return [json.loads(line)["handle"] for line in path.read_text().splitlines() if line]


def summarize(results: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    spawned, finished, codes, missing = [], [], Counter[str](), 0
    for res in results:
        if not isinstance(res, dict):
            missing += 1
            continue
        spawned.append(res["spawned_at"])
        finished.append(res["finished_at"])
        codes[str(res["exit_code"])] += 1
    return {"spawned": spawned, "finished": finished, "exit_codes": dict(codes),
            "missing": missing}


def latency_loop(samples: int, submit: Callable[[], Any],
                 result_of: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """Enqueue one job at a time on an idle worker: spawn time minus the time just before
    the enqueue call, in milliseconds."""
    out: list[float] = []
    deadline = time.monotonic() + LATENCY_BUDGET
    for _ in range(samples):
        if time.monotonic() > deadline:
            break
        t0 = time.time()
        handle = submit()
        res = result_of(handle)
        out.append((res["spawned_at"] - t0) * 1000)
        time.sleep(0.01)  # let the worker go idle again
    return {"latencies_ms": out}
