"""Small OTLP trace receivers for the tests: what a collector would get, decoded.

``HttpReceiver`` answers ``POST /v1/traces`` (OTLP/HTTP, protobuf, optionally gzip) and
``GrpcReceiver`` serves the OTLP ``TraceService`` over gRPC; both decode every
``ExportTraceServiceRequest`` with opentelemetry-proto into ``Span`` records that a test
can query. Nothing is stubbed: the services export to them with the real exporters.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUSES = {0: "unset", 1: "ok", 2: "error"}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    return getattr(value, which) if which else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class Span:
    """One exported span, ids in lowercase hex ("" for no parent)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str
    service: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    start_ns: int = 0
    end_ns: int = 0


class Receiver:
    """The spans received so far, safe to read while exports arrive."""

    endpoint = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self.requests = 0

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        received = []
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name"))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(_span(span, service))
        with self._lock:
            self._spans += received
            self.requests += 1

    @property
    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = 30.0,
                 what: str = "spans") -> list[Span]:
        """All spans once ``predicate(spans)`` holds; AssertionError with what came if not."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.spans
            if predicate(spans):
                return spans
            if time.monotonic() >= deadline:
                seen = [(s.name, s.service, s.trace_id[:8], s.status) for s in spans]
                raise AssertionError(f"not received within {timeout:g}s: {what}; got {seen}")
            time.sleep(0.05)


def _span(span: trace_pb2.Span, service: str) -> Span:
    return Span(
        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex(), name=span.name, kind=KINDS.get(span.kind, "?"),
        service=service, attributes=_attributes(span.attributes),
        status=STATUSES.get(span.status.code, "?"), status_message=span.status.message,
        events=[(e.name, _attributes(e.attributes)) for e in span.events],
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano,
    )


class HttpReceiver(Receiver):
    """OTLP/HTTP with protobuf bodies on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        super().__init__()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                encoding = self.headers.get("Content-Encoding", "")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.add(request)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcReceiver(Receiver):
    """The OTLP gRPC TraceService, without TLS, on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        super().__init__()
        receiver = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's naming
                receiver.add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        # Generated code without annotations.
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            Service(), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self.endpoint = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


@contextmanager
def receiving(protocol: str) -> Iterator[Receiver]:
    """A running receiver for ``http/protobuf`` or ``grpc``, stopped afterwards."""
    receiver: HttpReceiver | GrpcReceiver = (
        GrpcReceiver() if protocol == "grpc" else HttpReceiver())
    try:
        yield receiver
    finally:
        receiver.stop()


def otel_env(receiver: Receiver, protocol: str, **extra: str) -> dict[str, str]:
    """The OTEL_* variables that make a QueueCTL process export to ``receiver``, fast."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        # Export within 0.2 s of a span's end instead of 5 s: the tests wait for them.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        **extra,
    }
