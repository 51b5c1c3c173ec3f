"""The heartbeat thread: status into ``P:worker:<id>``, and stop commands from Redis.

It blocks on the worker's control list between beats, so ``queuectl worker
stop`` reaches the worker at once, and it never waits on a job, so a long
job cannot delay a beat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import redis

from queuectl.core.models import iso
from queuectl.core.store import Store

log = logging.getLogger("queuectl.worker")


class Heartbeat(threading.Thread):
    def __init__(self, store: Store, worker_id: str, instance: str, interval: float, ttl: float,
                 status: Callable[[], dict[str, str]], on_stop: Callable[[], None],
                 done: threading.Event, on_beat: Callable[[], None]) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.store = store
        self.worker_id = worker_id
        self.instance = instance
        self.interval = interval
        self.ttl = ttl
        self.status = status
        self.on_stop = on_stop
        self.done = done
        self.on_beat = on_beat
        self.started_at = iso(time.time())
        self.host = socket.gethostname()

    def beat(self) -> None:
        k = self.store.keys
        fields = {"id": self.worker_id, "host": self.host, "pid": str(os.getpid()),
                  "started_at": self.started_at, **self.status()}
        self.store.heartbeat(k.worker(self.worker_id), k.workers, self.worker_id, self.ttl,
                             self.instance, fields)

    def run(self) -> None:
        control = self.store.keys.control(self.worker_id)
        failing = False
        while not self.done.is_set():
            try:
                self.beat()
                self.on_beat()
                reply = self.store.redis.blpop([control], timeout=self.interval)
                if failing:
                    log.info("heartbeat: Redis is back")
                    failing = False
            except redis.RedisError as exc:
                if not failing:
                    log.warning("heartbeat: Redis unavailable (%s); retrying", exc)
                    failing = True
                self.done.wait(min(self.interval, 1.0))
                continue
            if reply is not None and reply[1] == b"stop":
                log.info("stop requested through Redis")
                self.on_stop()


def status_fields(threads: int, queues: list[str], state: str, current: list[str],
                  processed: int, failed: int) -> dict[str, str]:
    return {"threads": str(threads), "queues": ",".join(queues), "state": state,
            "current": json.dumps(current), "processed": str(processed),
            "failed": str(failed)}
