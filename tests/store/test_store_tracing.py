"""Send spans of the store's enqueue and DLQ retry against real Redis, with the real SDK
(its InMemorySpanExporter): the context a job stores is its send span's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from queuectl.core.errors import ConflictError
from queuectl.core.models import JobSpec
from queuectl.core.store import Store
from queuectl.core.tracecontext import read_context
from queuectl.core.tracing import Tracing

GIVEN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 vendor=1"


@pytest.fixture
def traced(make_store: Callable[..., Store]) -> Iterator[tuple[Store, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    store = make_store(max_retries=0)
    store.tracing = Tracing("queuectl-cli", provider=provider, environ={})
    yield store, exporter
    provider.shutdown()


def ids(span: ReadableSpan) -> tuple[str, str]:
    ctx = span.get_span_context()
    assert ctx is not None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def stored_ids(store: Store, job_id: str) -> tuple[str, str]:
    raw = store.redis.hget(store.keys.job(job_id), "trace_context")
    carrier = read_context(raw.decode() if isinstance(raw, bytes) else None)
    assert carrier is not None
    return carrier.trace_id, carrier.span_id


def test_each_job_stores_its_own_send_span(
        traced: tuple[Store, InMemorySpanExporter]) -> None:
    store, exporter = traced
    store.enqueue(JobSpec(id="one", command="true"))
    results = store.enqueue_many([JobSpec(id="two", command="true", queue="q2"),
                                  JobSpec(id="one", command="true")])
    assert [r.state is None for r in results] == [False, True]  # "one" exists: skipped
    spans = {(s.attributes or {})["messaging.message.id"]: s
             for s in exporter.get_finished_spans() if s.status.status_code is StatusCode.UNSET}
    assert set(spans) == {"one", "two"}
    assert stored_ids(store, "one") == ids(spans["one"])
    assert stored_ids(store, "two") == ids(spans["two"])
    assert spans["two"].name == "send q2"
    (skipped,) = [s for s in exporter.get_finished_spans()
                  if s.status.status_code is StatusCode.ERROR]
    assert (skipped.attributes or {})["error.type"] == "ConflictError"
    assert ids(skipped) != stored_ids(store, "one"), "the record keeps the first context"


def test_a_refused_enqueue_fails_its_span_and_a_given_context_is_kept(
        traced: tuple[Store, InMemorySpanExporter]) -> None:
    store, exporter = traced
    store.enqueue(JobSpec(id="one", command="true"))
    with pytest.raises(ConflictError):
        store.enqueue(JobSpec(id="one", command="true"))
    assert [s.status.status_code for s in exporter.get_finished_spans()] == [
        StatusCode.UNSET, StatusCode.ERROR]
    store.enqueue(JobSpec(id="given", command="true"), trace_context=GIVEN)
    assert store.redis.hget(store.keys.job("given"), "trace_context") == GIVEN.encode()
    assert len(exporter.get_finished_spans()) == 2, "the caller traced that send itself"


def test_a_dlq_retry_is_a_send_span_under_the_jobs_own(
        traced: tuple[Store, InMemorySpanExporter]) -> None:
    store, exporter = traced
    store.enqueue(JobSpec(id="d", command="false"))
    job = store.fetch("w1", ["default"])
    assert job is not None and store.fail(job, "w1", b"", 0, 1, "exit code 1").dead
    before = stored_ids(store, "d")
    assert store.dlq_retry(["d", "not-dead"]).moved == 1
    retries = [s for s in exporter.get_finished_spans()
               if (s.attributes or {})["messaging.operation.name"] == "dlq_retry"]
    by_id = {(s.attributes or {})["messaging.message.id"]: s for s in retries}
    retry = by_id["d"]
    assert retry.parent is not None and ids(retry)[0] == before[0]
    assert f"{retry.parent.span_id:016x}" == before[1]
    assert stored_ids(store, "d") == before, "its next attempts stay under its send span"
    assert retry.status.status_code is StatusCode.UNSET
    assert store.dlq_retry(["d"]).moved == 0
    last = exporter.get_finished_spans()[-1]
    assert last.status.status_code is StatusCode.ERROR
    assert (last.attributes or {})["error.type"] == "not_moved"
