"""Celery app, task and driver: the worker is ``celery -A celery_peer worker -P prefork -c 8``
(or ``-P threads``) with BENCH_REDIS_URL set; the driver is
``python celery_peer.py ACTION --url URL ...``."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, group
from celery.result import AsyncResult
from common import emit, latency_loop, parser, read_handles, run_command, summarize, timed_enqueue

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("celery_peer", broker=URL, backend=URL)
app.conf.update(result_expires=3600, worker_hijack_root_logger=False,
                broker_connection_retry_on_startup=True)


@app.task(name="run")
def run(command: str) -> dict[str, Any]:
    return run_command(command)


def result_of(task_id: str, timeout: float = 30) -> dict[str, Any]:
    value: dict[str, Any] = AsyncResult(task_id, app=app).get(timeout=timeout, interval=0.001)
    return value


def main() -> None:
    args = parser().parse_args()
    if args.action == "enqueue":
        timed_enqueue(
            args.n, args.mode, args.handles, lambda: run.delay(args.command).id,
            lambda n: [r.id for r in group(run.s(args.command) for _ in range(n)).apply_async()],
            lambda i: (f"celery-task-meta-{i}", i))
    elif args.action == "collect":
        emit(summarize(result_of(i, 5) for i in read_handles(args.handles)))
    elif args.action == "latency":
        emit(latency_loop(args.samples, lambda: run.delay(args.command).id, result_of))


if __name__ == "__main__":
    main()
