"""Redis memory per pending and per finished job, and what retention leaves behind.

    python benchmarks/memory.py                  # starts its own redis-server, N = 10,000
    python benchmarks/memory.py --jobs 10000 --redis-url redis://127.0.0.1:6379/0

Jobs go through the real scripts (enqueue.lua, fetch.lua, complete.lua / fail.lua,
prune.lua, prune_dead.lua) with a command of ``echo hello`` and 6 bytes of output,
the way a worker finishes them. Reported, from INFO memory (used_memory) after each
step, in bytes per job: a pending job; a completed job (record, output tail, index
entries); a dead job; and the bytes left per job once completed-ttl has passed and
the DLQ is over dead-max (what retention bounds). Run it against an otherwise idle
server: other clients' keys move used_memory too. ``measure(redis_url)`` is the entry
point for a harness.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from typing import Any

import redis

from queuectl.core.keys import Keys
from queuectl.core.models import JobSpec
from queuectl.core.policy import Policy
from queuectl.core.store import Store

WORKER = "bench-memory"
OUTPUT = b"hello\n"


def used(client: redis.Redis) -> int:
    info: Any = client.info("memory")
    return int(info["used_memory"])


def finish_all(store: Store, n: int, *, fail: bool) -> None:
    for _ in range(n):
        job = store.fetch(WORKER, ["default"])
        if job is None:
            break
        if fail:
            store.fail(job, WORKER, OUTPUT, len(OUTPUT), 1, "exit code 1")
        else:
            store.complete(job, WORKER, OUTPUT, len(OUTPUT))


def measure(redis_url: str, jobs: int = 10_000, dead_max: int = 1000) -> dict[str, Any]:
    """Bytes of Redis memory per job in each state, and after retention, on ``redis_url``."""
    prefix = f"benchmem{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    store = Store(client, Keys(prefix), Policy(max_retries=0))
    store.load_scripts()
    k = store.keys
    try:
        # The first job creates the shared keys (queue list, indexes, stats): not per job.
        store.enqueue(JobSpec(command="echo hello"))
        finish_all(store, 1, fail=False)
        base = used(client)
        store.enqueue_many(JobSpec(command="echo hello") for _ in range(jobs))
        pending = used(client)
        finish_all(store, jobs, fail=False)
        completed = used(client)
        client.hset(k.config, mapping={"completed-ttl": "1"})
        ended: Any = client.zrange(k.completed, 0, -1)
        client.zadd(k.completed, dict.fromkeys(ended, 0))  # finished long ago
        while store.prune(500):
            pass
        pruned = used(client)
        store.enqueue_many(JobSpec(command="echo hello") for _ in range(jobs))
        finish_all(store, jobs, fail=True)
        dead = used(client)
        client.hset(k.config, mapping={"dead-max": str(dead_max)})
        while sum(store.prune_dead(500)):
            pass
        dead_after = used(client)
        return {
            "jobs": jobs,
            "pending_bytes_per_job": round((pending - base) / jobs),
            "completed_bytes_per_job": round((completed - base) / jobs),
            "after_completed_ttl_bytes_per_job": round((pruned - base) / jobs),
            "dead_bytes_per_job": round((dead - pruned) / jobs),
            "dead_max": dead_max,
            "dead_kept": int(client.llen(k.dead_letter)),
            "after_dead_max_bytes_per_kept_job": round((dead_after - pruned) / dead_max),
        }
    finally:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--redis-url", default=os.environ.get("QUEUECTL_REDIS_URL"))
    args = parser.parse_args()
    # The same throwaway server as benchmarks/promote.py (its folder is on sys.path when run).
    from promote import redis_server  # type: ignore[import-not-found]

    with redis_server(args.redis_url) as url:
        print(json.dumps(measure(url, args.jobs)))


if __name__ == "__main__":
    main()
