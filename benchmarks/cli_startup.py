"""Start-up time of CLI commands: median wall and CPU (user + system) of N runs each.

    python benchmarks/cli_startup.py                      # enqueue and status, 20 runs
    python benchmarks/cli_startup.py --runs 50 status 'worker list'
    QUEUECTL_REDIS_URL=redis://127.0.0.1:6379/0 python benchmarks/cli_startup.py

Runs the ``queuectl`` next to this interpreter, as a user would, against the embedded
Redis (started first) or ``QUEUECTL_REDIS_URL``; each round runs every command once,
so that a change of load on the machine weighs on all of them alike. The jobs it
enqueues run ``true`` under the key prefix ``clistartup``. Numbers are printed, never
asserted: on a shared machine, read the CPU column.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUEUECTL = str(Path(sys.executable).parent / "queuectl")


def run_once(words: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run (the child's own rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([QUEUECTL, *words], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"queuectl {shlex.join(words)} exited {done.returncode}: "
                         f"{done.stderr.decode(errors='replace').strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("commands", nargs="*", default=["enqueue -- true", "status"])
    args = parser.parse_args()
    env = {**os.environ, "QUEUECTL_KEY_PREFIX": "clistartup"}
    if not env.get("QUEUECTL_REDIS_URL"):
        subprocess.run([QUEUECTL, "redis", "start"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
    commands = [shlex.split(c) for c in args.commands]
    times: dict[str, list[tuple[float, float]]] = {shlex.join(c): [] for c in commands}
    for _ in range(args.runs):
        for words in commands:
            times[shlex.join(words)].append(run_once(words, env))
    where = env.get("QUEUECTL_REDIS_URL") or "the embedded Redis"
    print(f"queuectl start-up against {where}, median of {args.runs} runs:")
    for name, samples in times.items():
        walls = [w for w, _ in samples]
        cpus = [c for _, c in samples]
        print(f"  queuectl {name:<24} wall {statistics.median(walls) * 1000:5.0f} ms "
              f"(min {min(walls) * 1000:.0f}, max {max(walls) * 1000:.0f})   "
              f"cpu {statistics.median(cpus) * 1000:5.0f} ms")


if __name__ == "__main__":
    main()
