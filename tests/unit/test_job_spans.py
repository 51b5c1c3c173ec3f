"""The spans the worker and the scheduler make about a job, with the real SDK (no Redis):
statuses and error types of each way a run ends, the DLQ event, recover and promote."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from queuectl.core.logs import bound_job
from queuectl.core.scripting import Fetched, Moved
from queuectl.core.tracing import Tracing
from queuectl.scheduler.spans import promoted, recovered
from queuectl.worker.outcome import Ending, RunResult
from queuectl.worker.spans import Attempt, error_type

SEND = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing("test", provider=provider, environ={}), exporter
    provider.shutdown()


def result(ending: Ending, code: int | None, error: str = "") -> RunResult:
    return RunResult(ending, code, error, b"", 0, 0.1)


@pytest.mark.parametrize(("run", "expected"), [
    (result(Ending.EXITED, 0), None),
    (result(Ending.EXITED, 1, "exit code 1: oops"), "exit_code"),
    (result(Ending.EXITED, 137, "killed by signal SIGKILL"), "killed"),
    (result(Ending.EXITED, 130, "exit code 130"), "exit_code"),  # exit 130 of its own
    (result(Ending.TIMED_OUT, None, "timed out after 1s"), "timeout"),
    (result(Ending.NOT_STARTED, None, "cannot start"), "not_started"),
    (result(Ending.LEASE_LOST, None, "lease_lost"), "cancelled"),
    (result(Ending.INTERRUPTED, None, "interrupted"), "interrupted"),
    (result(Ending.ENVIRONMENT, None, "no space"), "host_failure"),
])
def test_each_way_a_run_ends_has_its_error_type(run: RunResult, expected: str | None) -> None:
    assert error_type(run) == expected


def finished(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_the_last_attempt_of_a_dead_job_has_the_dlq_event(
        spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    job = Fetched("j1", 3, "exit 7", None, 2, "mail", SEND)
    attempt = Attempt(tracing, job, "w1")
    bound = bound_job()
    assert bound is not None and bound["job_id"] == "j1" and bound["attempt"] == 2
    assert bound["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert attempt.env()["TRACEPARENT"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    attempt.end(result(Ending.EXITED, 7, "exit code 7"), "dead")
    assert bound_job() is None, "the fields end with the run"
    span = finished(exporter)
    assert span.name == "process mail" and span.kind is SpanKind.CONSUMER
    assert span.status.status_code is StatusCode.ERROR
    expected = {"messaging.client.id": "w1", "messaging.queuectl.attempt": 2,
                "process.exit.code": 7, "messaging.queuectl.outcome": "dead",
                "error.type": "exit_code"}
    attributes = dict(span.attributes or {})
    assert {k: attributes.get(k) for k in expected} == expected
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("queuectl.dead_letter", {"queuectl.reason": "exit code 7",
                                  "messaging.destination.name": "dead_letter"})]


def test_a_run_cut_short_has_no_exit_code(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    attempt = Attempt(tracing, Fetched("j2", 1, "sleep 9", 1.0, 1, "default", ""), "w1")
    attempt.end(result(Ending.TIMED_OUT, None, "timed out after 1s"), "timeout")
    span = finished(exporter)
    assert "process.exit.code" not in (span.attributes or {})
    assert (span.attributes or {})["error.type"] == "timeout"
    assert span.parent is None and span.events == ()


def test_recover_spans_and_the_dlq_event_of_a_buried_job(
        spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    started = time.time_ns()
    recovered(tracing, "s1", "w9", [Moved("a", "default", "requeued", None, SEND),
                                    Moved("b", "default", "buried", None, "")], started)
    back, buried = sorted(exporter.get_finished_spans(),
                          key=lambda s: str((s.attributes or {})["messaging.message.id"]))
    assert back.name == "recover default" and back.kind is SpanKind.INTERNAL
    assert back.parent is not None and f"{back.parent.span_id:016x}" == "b7ad6b7169203331"
    assert back.start_time == started and back.status.status_code is StatusCode.UNSET
    assert (back.attributes or {})["messaging.queuectl.lost_worker"] == "w9"
    assert buried.status.status_code is StatusCode.ERROR
    assert [e.name for e in buried.events] == ["queuectl.dead_letter"]
    assert (buried.attributes or {})["messaging.queuectl.source"] == "buried"


def test_promote_spans_carry_the_source(spans: tuple[Tracing, InMemorySpanExporter]) -> None:
    tracing, exporter = spans
    promoted(tracing, "s1", [Moved("d", "q", "delayed", 1.0, SEND)], time.time_ns())
    span = finished(exporter)
    assert span.name == "promote q"
    assert (span.attributes or {})["messaging.queuectl.source"] == "delayed"
    assert (span.attributes or {})["messaging.client.id"] == "s1"
