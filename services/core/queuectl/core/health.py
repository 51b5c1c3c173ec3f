"""Liveness and readiness of a service, and the HTTP endpoint that serves them with /metrics.

Liveness tells "hung" apart from "Redis is down": a probe that fails during every
broker outage gets healthy pods restarted in a loop. So ``/healthz`` fails only
when one of the service's own loops has stopped making progress (each ticks at
least every few seconds, also while it waits out an outage); ``/readyz`` fails
while Redis is unreachable, before the scripts are loaded, and while a worker
drains.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from queuectl.core.errors import CannotWorkError

log = logging.getLogger("queuectl.health")
# What --check exits with when the service is not healthy or ready, or does not answer.
EXIT_NOT_HEALTHY = 1
PROBE_TIMEOUT = 5.0

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class Health:
    """What the probes report; every method is safe to call from any thread."""

    def __init__(self, stuck_after: float) -> None:
        self.stuck_after = stuck_after
        self._lock = threading.Lock()
        self._ticks: dict[str, float] = {}
        self._down: set[str] = set()
        self.scripts_loaded = False
        self.draining = False

    # -- liveness -----------------------------------------------------------------------
    def tick(self) -> None:
        """The calling thread made progress (watched only inside ``watching``)."""
        name = threading.current_thread().name
        with self._lock:
            if name in self._ticks:
                self._ticks[name] = time.monotonic()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Watch the calling thread's loop while inside; a thread that ended is not hung."""
        name = threading.current_thread().name
        with self._lock:
            self._ticks[name] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._ticks.pop(name, None)

    def stuck(self) -> list[str]:
        """Watched threads that made no progress for ``stuck_after`` seconds."""
        now = time.monotonic()
        with self._lock:
            return sorted(n for n, t in self._ticks.items() if now - t > self.stuck_after)

    # -- readiness ----------------------------------------------------------------------
    def redis_down(self, what: str) -> None:
        with self._lock:
            self._down.add(what)

    def redis_up(self, what: str) -> None:
        with self._lock:
            self._down.discard(what)

    def not_ready(self) -> str | None:
        """Why the service is not ready, or None."""
        with self._lock:
            down = sorted(self._down)
        if down:
            return f"Redis is unreachable ({', '.join(down)})"
        if not self.scripts_loaded:
            return "the Lua scripts are not loaded yet"
        if self.draining:
            return "draining: no new jobs are taken"
        return None

    def not_live(self) -> str | None:
        """Why the process looks hung, or None."""
        stuck = self.stuck()
        if stuck:
            return f"no progress for over {self.stuck_after:g}s: {', '.join(stuck)}"
        return None


def app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    """The WSGI app: /healthz, /readyz, and /metrics (any other path) from prometheus-client."""
    metrics = make_wsgi_app(registry)

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            why = health.not_live() if path == "/healthz" else health.not_ready()
            status = "200 OK" if why is None else "503 Service Unavailable"
            body = (why or "ok").encode() + b"\n"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                    ("Content-Length", str(len(body)))])
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return serve


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a whole traceback here (a scraper that hung up, say): the
        # service's log keeps one line per event.
        log.warning("metrics endpoint: request from %s failed: %s", client_address[0],
                    sys.exc_info()[1])


class _LastLine(io.StringIO):
    """wsgiref's handler prints an application error's traceback here and flushes: log
    its last line, the exception, as one warning."""

    def flush(self) -> None:
        lines = [line for line in self.getvalue().splitlines() if line.strip()]
        if lines:
            log.warning("metrics endpoint: %s", lines[-1].strip())
        self.seek(0)
        self.truncate()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds must not fill the service's log."""

    def get_stderr(self) -> io.StringIO:
        return _LastLine()


class Endpoint:
    """The HTTP server of one service, on its own daemon thread."""

    def __init__(self, addr: str, port: int, registry: CollectorRegistry,
                 health: Health) -> None:
        self.server = make_server(addr, port, app(registry, health), _Server,
                                  handler_class=_QuietHandler)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http",
                                       daemon=True)

    def start(self) -> Endpoint:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Monitor:
    """Backoff's monitor for a service: outages make it unready, failed calls are counted
    by operation (the first word of the Backoff's name: start, slot, report, heartbeat,
    scheduler, gauges), and waiting out an outage counts as progress."""

    def __init__(self, health: Health, count_error: Callable[[str], None]) -> None:
        self.health = health
        self.count_error = count_error

    def failed(self, what: str, exc: BaseException, outage: bool) -> None:
        self.count_error(what.split(" ", 1)[0])
        if outage:
            self.health.redis_down(what)

    def recovered(self, what: str) -> None:
        self.health.redis_up(what)

    def waited(self) -> None:
        self.health.tick()


def serve(port: int | None, default_port: int, addr: str, registry: CollectorRegistry,
          health: Health) -> Endpoint | None:
    """Start the endpoint on ``port`` (None: ``default_port``; 0: none).

    A port given explicitly that cannot be bound is an error (CannotWorkError, exit 1):
    the operator expects metrics there. The default port taken on a laptop running
    several services is not: one warning, and the service runs without an endpoint.
    """
    chosen = default_port if port is None else port
    if chosen == 0:
        return None
    try:
        endpoint = Endpoint(addr, chosen, registry, health).start()
    except OSError as exc:
        why = f"cannot serve metrics on {addr}:{chosen}: {exc.strerror or exc}"
        if port is not None:
            raise CannotWorkError(f"{why} (QUEUECTL_METRICS_PORT)") from None
        log.warning("%s; running without /metrics, /healthz and /readyz (set "
                    "QUEUECTL_METRICS_PORT to another port, or 0 to turn it off)", why)
        return None
    log.info("serving /metrics, /healthz and /readyz on %s:%d", addr, endpoint.port)
    return endpoint


def probe(prog: str, what: str, default_port: int,
          settings: Callable[[], Any]) -> int:
    """``<prog> --check [live|ready]``: ask the running service on this host (an exec probe).

    Prints the endpoint's one-line answer; 0 when it is healthy (live) or ready, 1 when
    not or when nothing answers, 3 when the settings are invalid.
    """
    import urllib.error
    import urllib.request

    from queuectl.core.errors import QueueCtlError

    try:
        port, addr = _probe_target(settings(), default_port)
    except QueueCtlError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if port == 0:
        print(f"{prog}: error: no health endpoint: QUEUECTL_METRICS_PORT is 0",
              file=sys.stderr)
        return EXIT_NOT_HEALTHY
    path = "/readyz" if what == "ready" else "/healthz"
    url = f"http://{addr}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT) as reply:
            print(reply.read().decode(errors="replace").strip())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(errors="replace").strip() or f"HTTP {exc.code}")
        return EXIT_NOT_HEALTHY
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"no answer from {url}: {reason}")
        return EXIT_NOT_HEALTHY


def _probe_target(settings: Any, default_port: int) -> tuple[int, str]:
    port = default_port if settings.metrics_port is None else settings.metrics_port
    addr = settings.metrics_addr
    # The service listens on every interface: ask it on the loopback one.
    if addr in ("0.0.0.0", "::", ""):  # noqa: S104
        addr = "127.0.0.1"
    return port, f"[{addr}]" if ":" in addr else addr
