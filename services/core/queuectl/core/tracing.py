"""OpenTelemetry traces: one trace per job, from its enqueue to its last attempt.

Tracing is off unless the standard ``OTEL_*`` variables turn it on (``export_config``).
Off, nothing of the SDK is imported and every ``JobSpan`` is empty: ``queuectl`` starts
for every command, and its start-up time is what its users feel. On, each process
owns a private ``TracerProvider`` (never the global one) that exports over OTLP
(HTTP or gRPC) or to stderr, and ``shutdown`` flushes it within a bounded time.

The context travels in the job record (``trace_context``, see tracecontext.py): the
``send`` span's, which every consumer continues (``TraceMode``).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, NamedTuple

from queuectl.core.errors import InvalidInputError
from queuectl.core.settings import TraceMode
from queuectl.core.tracecontext import Carrier, carrier_of, env_context, read_context

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanContext, Tracer

SYSTEM = "queuectl"
SCOPE = "queuectl"
# The event a job's last span gets when the job is moved to the dead letter queue.
DEAD_LETTER_EVENT = "queuectl.dead_letter"
EXPORTERS = ("otlp", "console", "none")
PROTOCOLS = ("http/protobuf", "grpc")


class ExportConfig(NamedTuple):
    exporters: tuple[str, ...]
    protocol: str


def _first(environ: Mapping[str, str], *names: str) -> tuple[str, str]:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return names[-1], ""


def export_config(environ: Mapping[str, str]) -> ExportConfig | None:
    """What the ``OTEL_*`` variables ask for; None when traces are off.

    On when ``OTEL_TRACES_EXPORTER`` names an exporter, or when it is unset and an OTLP
    endpoint is set (OpenTelemetry's default exporter is OTLP to localhost, which
    would make every CLI command try to reach a collector nobody runs). A value
    QueueCTL cannot honour is InvalidInputError, like any other bad setting.
    """
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    _, endpoint = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                         "OTEL_EXPORTER_OTLP_ENDPOINT")
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = [n.strip() for n in raw.split(",") if n.strip()] if raw else []
    if not raw and endpoint:
        names = ["otlp"]
    for name in names:
        if name not in EXPORTERS:
            raise InvalidInputError(f"invalid environment OTEL_TRACES_EXPORTER: {name!r} is "
                                    f"not supported (use {', '.join(EXPORTERS)})")
    wanted = tuple(dict.fromkeys(n for n in names if n != "none"))
    if not wanted:
        return None
    variable, protocol = _first(environ, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                                "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = protocol or "http/protobuf"
    if "otlp" in wanted and protocol not in PROTOCOLS:
        raise InvalidInputError(f"invalid environment {variable}: {protocol!r} is not "
                                f"supported (use {' or '.join(PROTOCOLS)})")
    return ExportConfig(wanted, protocol)


class JobSpan:
    """A span about one job, or no span at all (every method then does nothing).

    ``carrier`` is the context the job carries on: the span's own, or, with no span,
    the context it would have continued, so that a job still joins its trace (and
    its log lines still name it) where this process does not trace.
    """

    __slots__ = ("_span", "carrier")

    def __init__(self, span: Span | None = None, carrier: Carrier | None = None) -> None:
        self._span = span
        self.carrier = carrier_of(span.get_span_context()) if span is not None else carrier

    @property
    def context(self) -> str:
        """The ``trace_context`` to store ("" for none)."""
        return self.carrier.stored() if self.carrier else ""

    @property
    def trace_id(self) -> str | None:
        return self.carrier.trace_id if self.carrier else None

    @property
    def span_id(self) -> str | None:
        return self.carrier.span_id if self._span is not None and self.carrier else None

    def env(self) -> dict[str, str]:
        return self.carrier.env() if self.carrier else {}

    def set(self, attributes: Mapping[str, str | int | float | bool]) -> None:
        if self._span is not None:
            self._span.set_attributes(attributes)

    def event(self, name: str, attributes: Mapping[str, str | int | float | bool]) -> None:
        if self._span is not None:
            self._span.add_event(name, attributes)

    def ok(self) -> None:
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode
            self._span.set_status(Status(StatusCode.OK))

    def error(self, error_type: str, description: str) -> None:
        """Mark the operation failed; ``error_type`` is a short, low-cardinality class."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, description))

    def end(self, end_ns: int | None = None) -> None:
        if self._span is not None:
            self._span.end(end_time=end_ns)
            self._span = None


def _job_attributes(operation: str, queue: str, job_id: str,
                    extra: Mapping[str, str | int | float | bool]) -> dict[str, Any]:
    return {"messaging.system": SYSTEM, "messaging.operation.name": operation,
            "messaging.destination.name": queue, "messaging.message.id": job_id, **extra}


class Tracing:
    """The spans of one process; safe to use from many threads.

    Nothing is decided until the first span (or ``check``): an invalid ``OTEL_*``
    value then raises InvalidInputError, before anything is stored. ``provider`` is a
    TracerProvider to use instead of building one; with ``use_global``, the
    application's own global provider is used when it has set one (the Python API
    inside a traced application).
    """

    def __init__(self, service: str, *, mode: TraceMode = TraceMode.PARENT,
                 environ: Mapping[str, str] | None = None, provider: Any = None,
                 use_global: bool = False, quiet: bool = False) -> None:
        self.service = service
        self.mode = mode
        self.environ = os.environ if environ is None else environ
        self._given = provider
        self._use_global = use_global
        self._quiet = quiet
        self._lock = threading.Lock()
        self._resolved = False
        self._tracer: Tracer | None = None
        self._owned: TracerProvider | None = None
        self.dropped: list[str] = []  # with quiet: what the SDK logged (export failures)

    @classmethod
    def for_client(cls) -> Tracing:
        """The Python API's: the application's own global provider when it set one (its
        spans, its exporter), else what OTEL_* say, as ``queuectl-cli``."""
        return cls("queuectl-cli", use_global=True)

    # -- set-up ---------------------------------------------------------------------------
    def check(self) -> bool:
        """Decide now (reading OTEL_*, building the exporter); True when spans are made."""
        return self._get() is not None

    def _get(self) -> Tracer | None:
        if not self._resolved:
            with self._lock:
                if not self._resolved:
                    self._tracer = self._build()
                    self._resolved = True
        return self._tracer

    def _build(self) -> Tracer | None:
        provider = self._given if self._given is not None else self._global_provider()
        if provider is not None:
            return provider.get_tracer(SCOPE)  # type: ignore[no-any-return]
        config = export_config(self.environ)
        if config is None:
            return None
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The exit is ours to bound (shutdown), not an atexit hook of the SDK's that
        # waits for an unreachable collector.
        owned = TracerProvider(resource=self._resource(), shutdown_on_exit=False)
        for exporter in _exporters(config):
            owned.add_span_processor(BatchSpanProcessor(exporter))
        if self._quiet:
            _capture_sdk_logs(self.dropped)
        self._owned = owned
        atexit.register(self.shutdown)
        return owned.get_tracer(SCOPE)

    def _global_provider(self) -> Any:
        """The application's global TracerProvider, if it set one; never imports the API."""
        api = sys.modules.get("opentelemetry.trace") if self._use_global else None
        if api is None:
            return None
        provider = api.get_tracer_provider()
        return None if isinstance(provider, api.ProxyTracerProvider) else provider

    def _resource(self) -> Any:
        from importlib.metadata import PackageNotFoundError, version

        from opentelemetry.sdk.resources import Resource

        attributes: dict[str, str] = {}
        with suppress(PackageNotFoundError):
            attributes["service.version"] = version("queuectl")
        # OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) overrides ours;
        # Resource.create would let ours override them.
        declared = "service.name=" in self.environ.get("OTEL_RESOURCE_ATTRIBUTES", "")
        if not self.environ.get("OTEL_SERVICE_NAME", "").strip() and not declared:
            attributes["service.name"] = self.service
        return Resource.create(attributes)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Export the spans still buffered and stop; False if some were given up after
        ``timeout`` seconds (an unreachable collector must not hold the exit)."""
        with self._lock:
            owned, self._owned = self._owned, None
        if owned is None:
            return True
        done = threading.Event()

        def flush() -> None:
            try:
                owned.shutdown()
            finally:
                done.set()

        threading.Thread(target=flush, name="trace-flush", daemon=True).start()
        if done.wait(timeout):
            return True
        # The export thread lives on until the process exits: it must not write to a
        # stderr the interpreter is closing (a daemon thread doing so can abort it).
        _capture_sdk_logs(self.dropped)
        return False

    # -- spans ----------------------------------------------------------------------------
    def send(self, queue: str, job_id: str, parent: Carrier | None = None,
             operation: str = "send") -> JobSpan:
        """A started ``send <queue>`` (PRODUCER) span for a job about to be stored.

        Its parent is ``parent`` if given (a DLQ retry continues the job's trace), else
        the caller's current span, else the context of ``TRACEPARENT`` (a traced script,
        or a job, running ``queuectl enqueue``), else none. Tracing off, the span is
        NO_SPAN carrying that context, which the job then stores.
        """
        tracer = self._get()
        handed = parent or env_context(self.environ)
        if tracer is None:
            return JobSpan(None, handed)
        from opentelemetry import trace

        context = None
        if parent is not None or not trace.get_current_span().get_span_context().is_valid:
            context = _context_of(handed)
        span = tracer.start_span(f"send {queue}", context, trace.SpanKind.PRODUCER,
                                 _job_attributes(operation, queue, job_id,
                                                 {"messaging.operation.type": "send"}))
        return JobSpan(span, None)

    @contextmanager
    def sending(self, queue: str, job_id: str) -> Iterator[JobSpan]:
        """``send`` as a block: ended on exit, failed with the exception's type if one escapes."""
        span = self.send(queue, job_id)
        try:
            yield span
        except BaseException as exc:
            span.error(type(exc).__name__, str(exc))
            raise
        finally:
            span.end()

    def consume(self, operation: str, queue: str, job_id: str, stored: str | None,
                attributes: Mapping[str, str | int | float | bool], *, kind: str = "consumer",
                start_ns: int | None = None) -> JobSpan:
        """A started ``<operation> <queue>`` span about a job that carries ``stored``.

        In parent mode it is a child of the job's context (one trace per job); in link
        mode the root of a new trace with a link to it. A context that is not valid
        is ignored: the span is then a root without link.
        """
        carrier = read_context(stored)
        tracer = self._get()
        if tracer is None:
            return JobSpan(None, carrier)
        from opentelemetry import trace

        link = carrier is not None and self.mode is TraceMode.LINK
        # Never the thread's current span: the job's context, or a new trace.
        parent = _context_of(None if link else carrier)
        links = [trace.Link(_span_context(carrier))] if carrier is not None and link else []
        span = tracer.start_span(f"{operation} {queue}", parent, trace.SpanKind[kind.upper()],
                                 _job_attributes(operation, queue, job_id, attributes), links,
                                 start_time=start_ns)
        return JobSpan(span, None)


# Off whatever the environment says: the default of a Store nobody configured.
NO_TRACING = Tracing("queuectl", environ={})


def _span_context(carrier: Carrier) -> SpanContext:
    from opentelemetry.trace import SpanContext, TraceFlags, TraceState

    parts = carrier.traceparent.split("-")
    state = TraceState.from_header([carrier.tracestate]) if carrier.tracestate else None
    return SpanContext(int(parts[1], 16), int(parts[2], 16), is_remote=True,
                       trace_flags=TraceFlags(int(parts[3], 16)), trace_state=state)


def _context_of(carrier: Carrier | None) -> Context:
    """A context whose parent is ``carrier`` (an empty one, for a new trace, without)."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    if carrier is None:
        return otel_context.Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(_span_context(carrier)))


def _exporters(config: ExportConfig) -> list[Any]:
    out: list[Any] = []
    for name in config.exporters:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter
            # stderr: a command's stdout is its output (JSON, ids piped into wait -).
            out.append(ConsoleSpanExporter(out=sys.stderr))
        elif config.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
            out.append(GrpcExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpExporter,
            )
            out.append(HttpExporter())
    return out


class _Keep(logging.Handler):
    """Keeps the SDK's messages (export failures) instead of printing them."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.sink) < 20:
            self.sink.append(record.getMessage())


def _capture_sdk_logs(sink: list[str]) -> None:
    sdk = logging.getLogger("opentelemetry")
    sdk.propagate = False
    if not any(isinstance(h, _Keep) for h in sdk.handlers):
        sdk.addHandler(_Keep(sink))
