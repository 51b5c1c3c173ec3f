"""core/tracing.py with the real OpenTelemetry SDK: which OTEL_* settings turn traces on,
how spans are parented or linked, and that nothing happens when it is off (no Redis).

Spans are collected by the SDK's own InMemorySpanExporter through a real TracerProvider.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from queuectl.core.errors import EXIT_INVALID, InvalidInputError
from queuectl.core.settings import TraceMode
from queuectl.core.tracecontext import Carrier, read_context
from queuectl.core.tracing import NO_TRACING, ExportConfig, Tracing, export_config

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    (ENDPOINT, ExportConfig(("otlp",), "http/protobuf")),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"},
     ExportConfig(("otlp",), "http/protobuf")),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ExportConfig(("otlp",), "grpc")),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
      "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"},
     ExportConfig(("otlp",), "http/protobuf")),
    ({"OTEL_TRACES_EXPORTER": "console"}, ExportConfig(("console",), "http/protobuf")),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, ExportConfig(("otlp",), "http/protobuf")),
    ({"OTEL_TRACES_EXPORTER": "OTLP, console,otlp"},
     ExportConfig(("otlp", "console"), "http/protobuf")),
    ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, None),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "TRUE"}, None),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, None),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, ExportConfig(("otlp",), "http/protobuf")),
])
def test_which_settings_turn_traces_on(environ: dict[str, str],
                                       expected: ExportConfig | None) -> None:
    assert export_config(environ) == expected


@pytest.mark.parametrize(("environ", "message"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "invalid environment OTEL_TRACES_EXPORTER: 'zipkin' "
                                         "is not supported (use otlp, console, none)"),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
     "invalid environment OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not supported "
     "(use http/protobuf or grpc)"),
    ({**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "thrift"},
     "invalid environment OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'thrift' is not supported "
     "(use http/protobuf or grpc)"),
])
def test_a_setting_queuectl_cannot_honour_is_invalid_input(environ: dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        Tracing("queuectl-worker", environ=environ).check()
    assert str(caught.value) == message
    assert caught.value.exit_code == EXIT_INVALID


def test_off_spans_do_nothing_but_carry_the_context_on() -> None:
    tracing = Tracing("queuectl-cli", environ={"TRACEPARENT": CALLER})
    assert not tracing.check()
    sent = tracing.send("default", "j1")
    assert sent.context == CALLER  # the job joins its caller's trace all the same
    assert sent.span_id is None
    sent.error("x", "y")
    sent.end()
    run = tracing.consume("process", "default", "j1", CALLER + " k=v", {})
    assert run.env() == {"TRACEPARENT": CALLER, "TRACESTATE": "k=v"}
    assert run.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert tracing.shutdown(0.1)
    assert not NO_TRACING.check()
    assert NO_TRACING.send("q", "j").context == ""


@pytest.fixture
def memory() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    spans = [s for s in exporter.get_finished_spans() if s.name == name]
    assert len(spans) == 1, [s.name for s in exporter.get_finished_spans()]
    return spans[0]


def hex_ids(span: ReadableSpan) -> tuple[str, str, str | None]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = f"{span.parent.span_id:016x}" if span.parent is not None else None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", parent


def test_a_send_span_stores_its_own_context(
        memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = memory
    tracing = Tracing("queuectl-cli", provider=provider, environ={})
    span = tracing.send("mail", "j1")
    stored = span.context
    span.end()
    sent = finished(exporter, "send mail")
    trace_id, span_id, parent = hex_ids(sent)
    assert parent is None
    carrier = read_context(stored)
    assert carrier is not None and carrier.tracestate == ""
    assert carrier.traceparent.startswith(f"00-{trace_id}-{span_id}-")
    assert int(carrier.traceparent[-2:], 16) & 1, "sampled"  # (0x02: a random trace id)
    assert sent.kind is SpanKind.PRODUCER
    assert dict(sent.attributes or {}) == {
        "messaging.system": "queuectl", "messaging.operation.name": "send",
        "messaging.operation.type": "send", "messaging.destination.name": "mail",
        "messaging.message.id": "j1"}


def test_a_send_span_continues_the_callers_span_then_traceparent(
        memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = memory
    tracing = Tracing("queuectl-cli", provider=provider,
                      environ={"TRACEPARENT": CALLER, "TRACESTATE": "vendor=1"})
    tracing.send("env", "j1").end()
    with provider.get_tracer("app").start_as_current_span("request") as current:
        tracing.send("app", "j2").end()
    dlq = tracing.send("dlq", "j3", Carrier("00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
                       operation="dlq_retry")
    dlq.end()

    by_env = finished(exporter, "send env")
    assert hex_ids(by_env)[0] == "0af7651916cd43dd8448eb211c80319c"
    assert hex_ids(by_env)[2] == "b7ad6b7169203331"
    assert by_env.get_span_context().trace_state.to_header() == "vendor=1"  # type: ignore[union-attr]
    by_app = finished(exporter, "send app")
    assert hex_ids(by_app)[2] == f"{current.get_span_context().span_id:016x}"
    by_job = finished(exporter, "send dlq")
    assert hex_ids(by_job)[0] == "1" * 32 and hex_ids(by_job)[2] == "2" * 16
    assert (by_job.attributes or {})["messaging.operation.name"] == "dlq_retry"


def test_sending_fails_the_span_with_what_escaped(
        memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = memory
    tracing = Tracing("queuectl-cli", provider=provider, environ={})
    with pytest.raises(InvalidInputError), tracing.sending("q", "j"):
        raise InvalidInputError("no")
    span = finished(exporter, "send q")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "no"
    assert (span.attributes or {})["error.type"] == "InvalidInputError"


@pytest.mark.parametrize("mode", list(TraceMode))
def test_a_consumer_span_is_a_child_or_a_linked_root(
        mode: TraceMode, memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = memory
    tracing = Tracing("queuectl-worker", provider=provider, environ={}, mode=mode)
    with provider.get_tracer("t").start_as_current_span("unrelated"):
        span = tracing.consume("process", "default", "j1", CALLER + " vendor=1",
                               {"messaging.queuectl.attempt": 2})
    env = span.env()
    span.ok()
    span.end()
    run = finished(exporter, "process default")
    trace_id, span_id, parent = hex_ids(run)
    assert run.kind is SpanKind.CONSUMER
    assert (run.attributes or {})["messaging.queuectl.attempt"] == 2
    assert run.status.status_code is StatusCode.OK
    assert env["TRACEPARENT"][:-2] == f"00-{trace_id}-{span_id}-"
    if mode is TraceMode.PARENT:
        assert (trace_id, parent) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
        assert env["TRACESTATE"] == "vendor=1"
        assert run.links == ()
    else:
        assert parent is None and trace_id != "0af7651916cd43dd8448eb211c80319c"
        (link,) = run.links
        assert (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") == (
            "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")


@pytest.mark.parametrize("stored", ["", "garbage", "ff-" + "1" * 32 + "-" + "2" * 16 + "-01"])
def test_a_bad_stored_context_gives_a_root_span_without_link(
        stored: str, memory: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = memory
    for mode in TraceMode:
        tracing = Tracing("queuectl-worker", provider=provider, environ={}, mode=mode)
        tracing.consume("process", mode.value, "j1", stored, {}).end()
        run = finished(exporter, f"process {mode.value}")
        assert run.parent is None and run.links == ()
