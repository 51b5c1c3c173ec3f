"""The heartbeat thread: status into ``P:worker:<id>``, and stop commands from Redis.

It blocks on the worker's control list between beats, so ``queuectl worker
stop`` reaches the worker at once, and it never waits on a job, so a long
job cannot delay a beat. It is supervised: an outage is waited out; anything
that means the worker can no longer be seen as alive (its id taken by another
process, its own keys unusable, credentials refused, a bug) ends the worker
through ``on_fatal``, because a worker that stops beating but keeps running
jobs would have them reaped and run twice.
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

from queuectl.core.errors import (
    EXIT_CONFLICT,
    EXIT_DATA,
    EXIT_REDIS,
    ConflictError,
    DataError,
    RedisRefusedError,
)
from queuectl.core.health import Monitor
from queuectl.core.models import iso
from queuectl.core.resilience import Backoff
from queuectl.core.store import Store

log = logging.getLogger("queuectl.worker")
EXIT_CANNOT_WORK = 1


class Heartbeat(threading.Thread):
    def __init__(self, store: Store, worker_id: str, instance: str, url: str, interval: float,
                 ttl: float, status: Callable[[], dict[str, str]],
                 on_stop: Callable[[], None], done: threading.Event,
                 on_beat: Callable[[], None],
                 on_fatal: Callable[[str, int], None],
                 monitor: Monitor | None = None) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.store = store
        self.worker_id = worker_id
        self.instance = instance
        self.url = url
        self.interval = interval
        self.ttl = ttl
        self.status = status
        self.on_stop = on_stop
        self.done = done
        self.on_beat = on_beat
        self.on_fatal = on_fatal
        self.monitor = monitor
        self.started_at = iso(time.time())
        self.host = socket.gethostname()

    def beat(self) -> None:
        """One beat; ConflictError when another live process holds this worker id."""
        k = self.store.keys
        fields = {"id": self.worker_id, "host": self.host, "pid": str(os.getpid()),
                  "started_at": self.started_at, **self.status()}
        self.store.heartbeat(k.worker(self.worker_id), k.workers, self.worker_id, self.ttl,
                             self.instance, fields)

    def claim(self, wait: float, stop: threading.Event) -> bool:
        """The first beat (True once done); while another live process holds the id, wait
        up to ``wait`` seconds for its status to expire (a pod restarted under the same
        id), then raise ConflictError."""
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                self.beat()
                return True
            except ConflictError as exc:
                if time.monotonic() >= deadline or stop.is_set():
                    raise ConflictError(f"worker {exc}; a second worker may not use the same "
                                        "QUEUECTL_WORKER_ID") from None
                if not told:
                    log.warning("worker %s; waiting up to %.0fs for it to expire", exc, wait)
                    told = True
                stop.wait(min(0.5, self.interval))

    def run(self) -> None:
        if self.monitor is None:
            self._run()
            return
        with self.monitor.health.watching():
            self._run()

    def _run(self) -> None:
        # Retried no less often than it beats: once Redis answers again, a live worker
        # must beat well within its TTL, or the scheduler would hand its jobs back.
        backoff = Backoff("heartbeat", self.url, self.done, log, self.monitor,
                          cap=self.interval)
        while not self.done.is_set():
            if self.monitor is not None:
                self.monitor.waited()  # a beat, or a wait for a stop command: progress
            try:
                backoff.call(self._beat_and_listen)
            except ConflictError as exc:
                self.on_fatal(f"worker {exc}: another process took this worker id over "
                              "(this one was presumed dead); stopping", EXIT_CONFLICT)
                return
            except RedisRefusedError as exc:
                self.on_fatal(str(exc), EXIT_REDIS)
                return
            except DataError as exc:
                self.on_fatal(f"cannot register: {exc}", EXIT_DATA)
                return
            except Exception as exc:
                log.exception("heartbeat failed")
                self.on_fatal(f"heartbeat failed: {type(exc).__name__}: {exc}",
                              EXIT_CANNOT_WORK)
                return

    def _beat_and_listen(self) -> bool:
        self.beat()
        try:
            self.on_beat()
        except Exception:
            # Reconciling is a repair on the side; it must never stop the beats.
            log.exception("reconciling held jobs failed; trying again next beat")
        control = self.store.keys.control(self.worker_id)
        try:
            reply = self.store.redis.blpop([control], timeout=self.interval)
        except redis.ResponseError as exc:
            if not str(exc).startswith("WRONGTYPE"):
                raise
            # A control key of the wrong type: `worker stop` cannot reach this worker
            # until it is deleted (doctor --repair does), but the beats go on.
            self.store.notes([f"worker {self.worker_id}: key {control} has the wrong type"])
            self.done.wait(self.interval)
            return True
        if reply is not None and reply[1] == b"stop":
            log.info("stop requested through Redis")
            self.on_stop()
        return True


def status_fields(threads: int, queues: list[str], state: str, current: list[str],
                  processed: int, failed: int, slots_alive: int,
                  environment_failures: int) -> dict[str, str]:
    return {"threads": str(threads), "queues": ",".join(queues), "state": state,
            "current": json.dumps(current), "processed": str(processed),
            "failed": str(failed), "slots_alive": str(slots_alive),
            "environment_failures": str(environment_failures)}
