"""Entry point of ``queuectl-scheduler`` and ``queuectl scheduler``."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from queuectl.core.connection import open_store, redis_url
from queuectl.core.entrypoint import ServiceHelp, handle_arguments, run_service
from queuectl.core.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    RedisUnavailableError,
)
from queuectl.core.health import Health, probe, serve
from queuectl.core.logs import setup_logging
from queuectl.core.metrics import SchedulerMetrics, new_registry
from queuectl.core.settings import Settings, load_settings
from queuectl.core.tracing import Tracing
from queuectl.scheduler.gauges import ClusterGauges
from queuectl.scheduler.loop import STUCK_AFTER, Scheduler, log

# The socket timeout must outlast the longest BLPOP the loop issues (MAX_BLOCK),
# with room for a slow server; 30 s is what every QueueCTL service uses.
SOCKET_TIMEOUT = 30.0
# How stale the runtime policy (P:config) may be: `config set` reaches schedulers within it.
POLICY_MAX_AGE = 1.0
# /metrics, /healthz and /readyz unless QUEUECTL_METRICS_PORT says otherwise (the worker's
# default is 9750: both run side by side on one host).
METRICS_PORT = 9751
# How often the lease holder reads the cluster gauges: fresher than any scrape interval
# worth having, and cheap (a few pipelined reads per 200 queues).
GAUGES_MAX_INTERVAL = 5.0
# The longest the exit waits for the last spans to be exported (a collector that is down
# must not keep a stopping pod past its termination grace period).
TRACE_FLUSH_TIMEOUT = 5.0


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; a second one exits at once.

    Signal handlers can only be installed from the main thread; elsewhere (a
    scheduler run inside a test) the caller sets ``stop`` itself.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise SystemExit(EXIT_INTERRUPTED)
        log.info("%s received: finishing the current batch and stopping",
                 signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(settings: Settings) -> int:
    """Run the scheduler in the foreground until stopped; returns the process exit code."""
    setup_logging(settings.log_level, "scheduler", settings.log_format)
    # Checked before anything starts: a bad OTEL_* value is exit 3, like any bad setting.
    tracing = Tracing("queuectl-scheduler", mode=settings.trace_mode)
    tracing.check()
    stop = threading.Event()
    with stop_on_signals(stop):
        url = redis_url(settings)  # starts the embedded server when no URL is set
        try:
            store = open_store(settings, policy_max_age=POLICY_MAX_AGE,
                               socket_timeout=SOCKET_TIMEOUT, stop=stop)
        except RedisUnavailableError:
            if stop.is_set():  # stopped while waiting for a Redis Cluster to answer
                return EXIT_OK
            raise
        registry = new_registry("scheduler")
        metrics = SchedulerMetrics(registry)
        health = Health(STUCK_AFTER)
        scheduler = Scheduler(store, settings, stop, url=url, metrics=metrics, health=health,
                              tracing=tracing)
        endpoint = serve(settings.metrics_port, METRICS_PORT, settings.metrics_addr, registry,
                         health)
        interval = min(GAUGES_MAX_INTERVAL, settings.heartbeat_interval)
        gauges = ClusterGauges(store, f"{scheduler.id}/{scheduler.instance}", interval,
                               metrics, stop, scheduler.monitor)
        gauges.start()
        try:
            scheduler.run()
        finally:
            stop.set()
            gauges.join(SOCKET_TIMEOUT)
            if endpoint is not None:
                endpoint.close()
            store.redis.close()
            if not tracing.shutdown(TRACE_FLUSH_TIMEOUT):
                log.warning("traces not exported within %gs; given up", TRACE_FLUSH_TIMEOUT)
    return EXIT_OK


HELP = ServiceHelp(
    prog="queuectl-scheduler",
    purpose="Run the QueueCTL scheduler in the foreground until SIGTERM or SIGINT: it moves "
            "retries and delayed jobs back to their queues when they are due, hands back "
            "the jobs of workers that died, and deletes ended jobs past their retention. "
            "Several replicas may run at once. The same code as 'queuectl scheduler'.",
    variables=(
        ("QUEUECTL_SCHEDULER_INTERVAL", "longest sleep between rounds in seconds (default 1)"),
        ("QUEUECTL_SCHEDULER_BATCH", "items promoted per script call "
                                     "(default 100: about 1 ms of Redis time)"),
        ("QUEUECTL_WORKER_TTL", "seconds without a heartbeat before a worker is dead "
                                "(default 10)"),
    ),
    example="QUEUECTL_REDIS_URL=redis://redis:6379/0 queuectl-scheduler",
)


def main() -> None:
    """Console script ``queuectl-scheduler``: configured by the environment only."""
    code = handle_arguments(HELP, sys.argv[1:], check=lambda path: probe(
        "queuectl-scheduler", path, METRICS_PORT, load_settings))
    if code is not None:
        raise SystemExit(code)
    run_service("queuectl-scheduler", "queuectl scheduler", run)

if __name__ == "__main__":
    main()
