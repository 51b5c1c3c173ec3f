"""Entry point of ``queuectl-worker`` and ``queuectl worker start``.

Signals: the first SIGTERM or SIGINT stops fetching and lets running jobs
finish for up to ``QUEUECTL_SHUTDOWN_GRACE`` seconds; after that, or on a
second signal, running jobs are stopped (their process groups killed) and
handed back to the front of their queues. Nothing is lost either way.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

import redis

from queuectl.core.connection import open_store, redis_url
from queuectl.core.errors import QueueCtlError
from queuectl.core.logs import setup_logging
from queuectl.core.resilience import redis_error_message
from queuectl.core.settings import Settings, load_settings
from queuectl.worker.pool import MAX_BACKOFF, Worker

# The default socket timeout of every QueueCTL service (queuectl.core.connection.connect).
SOCKET_TIMEOUT = 30.0
# How stale the runtime policy (P:config) may be: `config set` reaches workers within it.
POLICY_MAX_AGE = 1.0


def _wait_for_redis(worker: Worker, url: str) -> bool:
    """Block until Redis answers (a pod may start before Redis); False if stopped meanwhile."""
    log = setup_logging(worker.settings.log_level, "worker")
    backoff = 0.2
    while not worker.stopping.is_set():
        try:
            worker.store.redis.ping()
            return True
        except redis.RedisError as exc:
            log.warning("%s; retrying in %.1fs", redis_error_message(exc, url), backoff)
            worker.stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)
    return False


def run(settings: Settings, *, count: int | None = None, queues: list[str] | None = None) -> int:
    """Run a worker in the foreground until stopped; returns the process exit code."""
    log = setup_logging(settings.log_level, "worker")
    url = redis_url(settings)
    # Idle job threads block in BLPOP for idle_wait, the heartbeat for heartbeat_interval.
    # The socket must outwait both, or a quiet queue reads as a Redis timeout (which
    # redis-py retries, so an idle_wait >= 30 s turned each idle poll into 90 s and a warning).
    store = open_store(settings, policy_max_age=POLICY_MAX_AGE, socket_timeout=max(
        SOCKET_TIMEOUT, settings.idle_wait + 5.0, settings.heartbeat_interval + 5.0))
    worker = Worker(store, settings, count or settings.concurrency, queues or settings.queues)
    grace_ends: list[float] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if worker.stopping.is_set():
            log.warning("second %s: stopping running jobs now", signal.Signals(signum).name)
            worker.hard_stop()
            return
        log.info("%s: draining (grace %gs)", signal.Signals(signum).name,
                 settings.shutdown_grace)
        grace_ends.append(time.monotonic() + settings.shutdown_grace)
        worker.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not _wait_for_redis(worker, url):
        return 0
    worker.start()
    while worker.alive():
        worker.join(0.2)
        worker.tend()
        if worker.stopping.is_set() and not grace_ends:
            # Stopped through Redis (`queuectl worker stop`): the grace starts now.
            grace_ends.append(time.monotonic() + settings.shutdown_grace)
        if grace_ends and time.monotonic() > grace_ends[0] and not worker.hard.is_set():
            log.warning("grace period over")
            worker.hard_stop()
    worker.close()
    return 0


def main() -> None:
    try:
        settings = load_settings()
        sys.exit(run(settings))
    except QueueCtlError as exc:
        print(f"queuectl-worker: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
