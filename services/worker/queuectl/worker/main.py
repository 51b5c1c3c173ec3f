"""Entry point of ``queuectl-worker`` and ``queuectl worker start``.

Signals: the first SIGTERM or SIGINT stops fetching and lets running jobs
finish for up to ``QUEUECTL_SHUTDOWN_GRACE`` seconds; after that, or on a
second signal, running jobs are stopped (their process groups killed) and
handed back to the front of their queues. Nothing is lost either way.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from functools import partial
from types import FrameType

from queuectl.core.connection import open_store, redis_url
from queuectl.core.entrypoint import ServiceHelp, handle_arguments, run_service
from queuectl.core.errors import QueueCtlError
from queuectl.core.health import Health, probe, serve
from queuectl.core.logs import setup_logging
from queuectl.core.metrics import WorkerMetrics, new_registry
from queuectl.core.resilience import Backoff
from queuectl.core.settings import Settings, load_settings
from queuectl.core.tracing import Tracing
from queuectl.worker.heartbeat import EXIT_CANNOT_WORK
from queuectl.worker.pool import STUCK_AFTER, Worker

# The default socket timeout of every QueueCTL service (queuectl.core.connection.connect).
SOCKET_TIMEOUT = 30.0
# How stale the runtime policy (P:config) may be: `config set` reaches workers within it.
POLICY_MAX_AGE = 1.0
# Where /metrics, /healthz and /readyz are served unless QUEUECTL_METRICS_PORT says otherwise
# (the scheduler's default is the next port, so both run side by side on one host).
METRICS_PORT = 9750
# The longest the exit waits for the last spans to be exported (a collector that is down
# must not keep a stopping pod past its termination grace period).
TRACE_FLUSH_TIMEOUT = 5.0


def _wait_for_redis(worker: Worker, url: str) -> bool:
    """Block until Redis answers (a pod may start before Redis); False if stopped meanwhile.

    Refused credentials or permissions raise RedisRefusedError (exit 6).
    """
    log = logging.getLogger("queuectl.worker")

    def ready() -> bool:
        worker.store.redis.ping()
        worker.store.load_scripts()
        return True

    answer = Backoff("start", url, worker.stopping, log, worker.monitor).call(ready)
    if answer is not None:
        worker.health.scripts_loaded = True
    return answer is not None


def _watch_threads(worker: Worker) -> None:
    """A thread that dies of an uncaught exception stops the worker, saying why."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        previous(args)
        name = args.thread.name if args.thread is not None else "a thread"
        worker.fail(f"{name} died: {args.exc_type.__name__}: {args.exc_value}",
                    EXIT_CANNOT_WORK)

    threading.excepthook = hook


def run(settings: Settings, *, count: int | None = None, queues: list[str] | None = None,
        processes: int | None = None, port_offset: int = 0) -> int:
    """Run a worker in the foreground until stopped; returns the process exit code.

    0 after a stop (signal or ``worker stop``); otherwise the code of what stopped it
    (README "Exit codes of the services"). With more than one process (``processes``,
    else QUEUECTL_WORKER_PROCESSES), this process supervises that many workers
    (queuectl.worker.processes); ``port_offset`` is such a worker's index.
    """
    log = setup_logging(settings.log_level, "worker", settings.log_format)
    if (processes or settings.worker_processes) > 1:
        from queuectl.worker.processes import supervise

        # Checked here, once, rather than failing in every child: exit 3 as below.
        Tracing("queuectl-worker", mode=settings.trace_mode).check()
        return supervise(settings, redis_url(settings), processes or settings.worker_processes,
                         count=count, queues=queues)
    # Checked before anything starts: a bad OTEL_* value is exit 3, like any bad setting.
    tracing = Tracing("queuectl-worker", mode=settings.trace_mode)
    tracing.check()
    url = redis_url(settings)
    # Idle job threads block in BLPOP for idle_wait, the heartbeat for heartbeat_interval.
    # The socket must outwait both, or a quiet queue reads as a Redis timeout (which
    # redis-py retries, so an idle_wait >= 30 s turned each idle poll into 90 s and a warning).
    # A cluster that does not answer yet is waited for (stop is never set: until the
    # signal handlers are installed, SIGTERM ends the process, which holds no job yet).
    store = open_store(settings, policy_max_age=POLICY_MAX_AGE, socket_timeout=max(
        SOCKET_TIMEOUT, settings.idle_wait + 5.0, settings.heartbeat_interval + 5.0),
        stop=threading.Event())
    registry = new_registry("worker")
    health = Health(STUCK_AFTER)
    worker = Worker(store, settings, count or settings.concurrency, queues or settings.queues,
                    url, metrics=WorkerMetrics(registry), health=health, tracing=tracing)
    endpoint = serve(_offset(settings.metrics_port, port_offset), METRICS_PORT + port_offset,
                     settings.metrics_addr, registry, health)
    try:
        return _run(worker, settings, log)
    finally:
        if endpoint is not None:
            endpoint.close()
        if not tracing.shutdown(TRACE_FLUSH_TIMEOUT):
            log.warning("traces not exported within %gs; given up", TRACE_FLUSH_TIMEOUT)


def _offset(port: int | None, offset: int) -> int | None:
    """Worker process ``offset``'s port: the next ones after the base port (0 stays off)."""
    return port + offset if port else port


def metrics_ports(settings: Settings) -> list[int]:
    """The port of each worker process's endpoint (one per QUEUECTL_WORKER_PROCESSES)."""
    base = METRICS_PORT if settings.metrics_port is None else settings.metrics_port
    return [base + i if base else 0 for i in range(settings.worker_processes)]


def _run(worker: Worker, settings: Settings, log: logging.Logger) -> int:
    url = worker.url
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
    _watch_threads(worker)
    if not _wait_for_redis(worker, url):
        return 0
    worker.start()
    with worker.health.watching():
        _supervise(worker, settings, grace_ends, log)
    worker.close()
    if worker.fatal is not None:
        raise WorkerStoppedError(worker.fatal.reason, worker.fatal.code)
    return 0


def _supervise(worker: Worker, settings: Settings, grace_ends: list[float],
               log: logging.Logger) -> None:
    """The main thread until every slot has ended: reap orphans, time the grace period."""
    while worker.alive():
        worker.health.tick()
        worker.join(0.2)
        worker.tend()
        if worker.stopping.is_set() and not grace_ends:
            # Stopped through Redis (`queuectl worker stop`) or on its own: the grace
            # starts now.
            grace_ends.append(time.monotonic() + settings.shutdown_grace)
        if grace_ends and time.monotonic() > grace_ends[0] and not worker.hard.is_set():
            log.warning("grace period over")
            worker.hard_stop()


class WorkerStoppedError(QueueCtlError):
    """The worker stopped itself because it could not work; ``exit_code`` says why."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.exit_code = code


HELP = ServiceHelp(
    prog="queuectl-worker",
    purpose="Run a QueueCTL worker in the foreground: threads that take jobs from their "
            "queues in priority order and run each job's shell command, until SIGTERM or "
            "SIGINT (running jobs get QUEUECTL_SHUTDOWN_GRACE seconds to finish and are "
            "handed back after that; nothing is lost) or 'queuectl worker stop'. The same "
            "code as 'queuectl worker start'.",
    variables=(
        ("QUEUECTL_QUEUES", "queues, comma-separated, highest priority first (default "
                            "default)"),
        ("QUEUECTL_CONCURRENCY", "threads: jobs run at once (default 4)"),
        ("QUEUECTL_WORKER_PROCESSES", "worker processes, each with its own id, threads and "
                                      "metrics port (QUEUECTL_METRICS_PORT + its index; "
                                      "default 1)"),
        ("QUEUECTL_LOG_DIR", "job log files (default $QUEUECTL_DATA_DIR/logs); a file "
                             "goes once its job's record has left Redis"),
        ("QUEUECTL_LOG_SWEEP_INTERVAL", "seconds between those removal passes (default 60)"),
        ("QUEUECTL_LOG_TARGET", "where job output goes: file, stdout or both (default file)"),
        ("QUEUECTL_SHUTDOWN_GRACE", "seconds running jobs get after SIGTERM (default 25)"),
        ("QUEUECTL_WORKER_ID", "this worker's id (default <host>-<pid>-<random>)"),
    ),
    example="QUEUECTL_REDIS_URL=redis://redis:6379/0 QUEUECTL_QUEUES=high,default "
            "queuectl-worker",
)


def check(what: str) -> int:
    """``--check live|ready``: every worker process must answer (one line each)."""
    code = probe("queuectl-worker", what, METRICS_PORT, load_settings)
    if code != 0:
        return code
    settings = load_settings()
    for port in metrics_ports(settings)[1:]:
        code = probe("queuectl-worker", what, port,
                     partial(settings.model_copy, update={"metrics_port": port}))
        if code != 0:
            return code
    return 0


def main() -> None:
    """Console script ``queuectl-worker``: configured by the environment only."""
    code = handle_arguments(HELP, sys.argv[1:], check=check)
    if code is not None:
        sys.exit(code)
    run_service("queuectl-worker", "queuectl worker start", run)

if __name__ == "__main__":
    main()
