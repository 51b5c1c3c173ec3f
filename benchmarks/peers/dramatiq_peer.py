"""Dramatiq broker, actor and driver: the worker is ``dramatiq dramatiq_peer -p 2 -t 4``
with BENCH_REDIS_URL set; the driver is ``python dramatiq_peer.py ACTION --url URL ...``."""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from common import emit, latency_loop, parser, read_handles, run_command, summarize, timed_enqueue
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
backend = RedisBackend(url=URL)
broker = RedisBroker(url=URL)
broker.add_middleware(Results(backend=backend, result_ttl=3_600_000))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0, queue_name="default")
def run(command: str) -> dict[str, Any]:
    return run_command(command)


def result_of(message: Message[Any], timeout_ms: int = 30_000) -> dict[str, Any]:
    value: dict[str, Any] = message.get_result(block=True, timeout=timeout_ms)
    return value


def main() -> None:
    args = parser().parse_args()
    if args.action == "enqueue":
        def bulk(n: int) -> list[Message[Any]]:
            # Dramatiq has no bulk enqueue: a group sends its messages one by one.
            messages = [run.message(args.command) for _ in range(n)]
            dramatiq.group(messages).run()
            return messages
        timed_enqueue(args.n, args.mode, args.handles, lambda: run.send(args.command), bulk,
                      lambda m: (backend.build_message_key(m), m.asdict()))
    elif args.action == "collect":
        emit(summarize(result_of(Message(**h), 5000) for h in read_handles(args.handles)))
    elif args.action == "latency":
        emit(latency_loop(args.samples, lambda: run.send(args.command), result_of))


if __name__ == "__main__":
    main()
