"""One trace per job across real processes, exported over OTLP to a receiver the test runs.

The real ``queuectl`` enqueues (its ``send`` span), real ``queuectl-worker`` and
``queuectl-scheduler`` processes run and promote the job (``process`` and ``promote``
spans), each exporting with the real OTLP exporter (HTTP or gRPC) to the receivers of
``otlp_receiver.py``, which decode what a collector would get.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState
from tests.e2e.helpers import run_cli
from tests.e2e.schemas import check

from .otlp_receiver import Receiver, Span, otel_env, receiving
from .procs import Procs, wait_ended, wait_registered

# Fails until its third run: it counts its runs in the file $COUNT names.
FLAKY = 'n=$(($(cat "$COUNT" 2>/dev/null || echo 0) + 1)); echo "$n" > "$COUNT"; [ "$n" -ge 3 ]'
FAST_RETRIES = {"backoff-base": "0.05", "backoff-factor": "1"}


@pytest.fixture
def fast_retries(client: Client) -> None:
    for name, value in FAST_RETRIES.items():
        client.config_set(name, value)


@pytest.fixture(params=["http/protobuf", "grpc"])
def receiver(request: pytest.FixtureRequest) -> Iterator[tuple[Receiver, str]]:
    with receiving(request.param) as running:
        yield running, request.param


def one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [(s.name, s.service) for s in spans])
    return found[0]


def enqueue(env: dict[str, str], *args: str) -> str:
    result = run_cli(env, ["enqueue", "--quiet", *args])
    assert result.code == 0, result.err
    assert result.err == "", result.err
    return result.out.strip()


@pytest.mark.slow
def test_fail_fail_succeed_is_one_trace(procs: Procs, client: Client, env: dict[str, str],
                                        tmp_path: Path, fast_retries: None,
                                        receiver: tuple[Receiver, str]) -> None:
    """The send span, three process spans (error, error, ok) whose parent is the send
    span, and the promote spans of both retries: one trace, over HTTP and over gRPC."""
    otlp, protocol = receiver
    traced = {**env, **otel_env(otlp, protocol)}
    worker = procs.worker({**traced, "QUEUECTL_CONCURRENCY": "1"})
    procs.scheduler({**traced, "QUEUECTL_SCHEDULER_INTERVAL": "0.1"})
    worker_id = wait_registered(client, worker)

    enqueue(traced, "--id", "flaky", "--max-retries", "3", "--env",
            f"COUNT={tmp_path / 'runs'}", "--", FLAKY)
    job = wait_ended(client, ["flaky"])["flaky"]
    assert job.state is JobState.COMPLETED and job.attempts == 3

    spans = otlp.wait_for(lambda got: sum(s.name == "process default" for s in got) == 3
                          and sum(s.name == "promote default" for s in got) == 2,
                          what="3 process and 2 promote spans")
    send = one(spans, "send default")
    assert (send.kind, send.service, send.parent_id) == ("producer", "queuectl-cli", "")
    assert send.attributes["messaging.system"] == "queuectl"
    assert send.attributes["messaging.message.id"] == "flaky"
    assert send.attributes["messaging.destination.name"] == "default"
    assert {s.trace_id for s in spans} == {send.trace_id}, "one trace for the whole job"

    runs = sorted((s for s in spans if s.name == "process default"),
                  key=lambda s: s.attributes["messaging.queuectl.attempt"])
    for attempt, span in enumerate(runs, 1):
        assert span.parent_id == send.span_id
        assert (span.kind, span.service) == ("consumer", "queuectl-worker")
        assert span.attributes["messaging.system"] == "queuectl"
        assert span.attributes["messaging.destination.name"] == "default"
        assert span.attributes["messaging.message.id"] == "flaky"
        assert span.attributes["messaging.client.id"] == worker_id
        assert span.attributes["messaging.queuectl.attempt"] == attempt
    assert [s.status for s in runs] == ["error", "error", "ok"]
    assert [s.attributes["process.exit.code"] for s in runs] == [1, 1, 0]
    assert [s.attributes.get("error.type") for s in runs] == ["exit_code", "exit_code", None]
    assert [s.attributes["messaging.queuectl.outcome"] for s in runs] == [
        "retried", "retried", "succeeded"]
    assert all(s.events == [] for s in runs)

    promotes = [s for s in spans if s.name == "promote default"]
    assert all(s.parent_id == send.span_id and s.service == "queuectl-scheduler"
               and s.attributes["messaging.queuectl.source"] == "retry" for s in promotes)

    # show prints the trace id; the worker's log lines carry it.
    shown = run_cli(env, ["show", "flaky", "--json"])
    assert check(json.loads(shown.out), "show")["trace_id"] == send.trace_id
    assert f"trace_id     {send.trace_id}" in run_cli(env, ["show", "flaky"]).out
    assert f"job=flaky queue=default attempt=1 trace={send.trace_id}]" in worker.stderr()


@pytest.mark.slow
def test_a_job_that_dies_gets_the_dlq_event_and_a_dlq_retry_continues_its_trace(
        procs: Procs, client: Client, env: dict[str, str], fast_retries: None) -> None:
    with receiving("grpc") as otlp:
        traced = {**env, **otel_env(otlp, "grpc")}
        procs.worker(traced)
        procs.scheduler({**traced, "QUEUECTL_SCHEDULER_INTERVAL": "0.1"})
        enqueue(traced, "--id", "doomed", "--max-retries", "1", "--", "exit 7")
        assert wait_ended(client, ["doomed"])["doomed"].state is JobState.DEAD
        spans = otlp.wait_for(lambda got: sum(s.name == "process default" for s in got) == 2,
                              what="2 process spans")
        send = one(spans, "send default")
        first, last = sorted((s for s in spans if s.name == "process default"),
                             key=lambda s: s.attributes["messaging.queuectl.attempt"])
        assert first.events == []
        assert first.attributes["messaging.queuectl.outcome"] == "retried"
        assert last.parent_id == send.span_id and last.status == "error"
        assert last.attributes["messaging.queuectl.outcome"] == "dead"
        assert last.attributes["process.exit.code"] == 7
        assert [name for name, _ in last.events] == ["queuectl.dead_letter"]
        assert last.events[0][1]["queuectl.reason"].startswith("exit code 7")

        # dlq retry: a send span in the job's trace; its next attempts stay in it.
        assert run_cli(traced, ["dlq", "retry", "doomed"]).code == 0
        spans = otlp.wait_for(lambda got: sum(s.name == "process default" for s in got) == 4,
                              what="4 process spans")
    (retry,) = [s for s in spans if s.attributes.get("messaging.operation.name") == "dlq_retry"]
    assert (retry.name, retry.kind, retry.service) == ("send default", "producer", "queuectl-cli")
    assert (retry.trace_id, retry.parent_id) == (send.trace_id, send.span_id)
    assert {(s.trace_id, s.parent_id) for s in spans if s.name == "process default"} == {
        (send.trace_id, send.span_id)}


@pytest.mark.slow
def test_link_mode_starts_a_trace_per_attempt_linked_to_the_send_span(
        procs: Procs, client: Client, env: dict[str, str], tmp_path: Path,
        fast_retries: None) -> None:
    with receiving("http/protobuf") as otlp:
        traced = {**env, **otel_env(otlp, "http/protobuf")}
        linked = {**traced, "QUEUECTL_TRACE_MODE": "link"}
        procs.worker({**linked, "OTEL_SERVICE_NAME": "batch-runner"})
        procs.scheduler({**linked, "QUEUECTL_SCHEDULER_INTERVAL": "0.1"})
        enqueue(traced, "--id", "flaky", "--max-retries", "3", "--env",
                f"COUNT={tmp_path / 'runs'}", "--", FLAKY)
        assert wait_ended(client, ["flaky"])["flaky"].state is JobState.COMPLETED
        spans = otlp.wait_for(lambda got: sum(s.name == "process default" for s in got) == 3
                              and sum(s.name == "promote default" for s in got) == 2,
                              what="3 process and 2 promote spans")
    send = one(spans, "send default")
    others = [s for s in spans if s is not send]
    for span in others:
        assert span.parent_id == "", f"{span.name} is the root of its own trace"
        assert span.links == [(send.trace_id, send.span_id)]
        assert span.trace_id != send.trace_id
    assert len({s.trace_id for s in others}) == len(others), "a trace per attempt"
    runs = [s for s in others if s.name == "process default"]
    assert sorted(s.status for s in runs) == ["error", "error", "ok"]
    assert {s.service for s in runs} == {"batch-runner"}  # OTEL_SERVICE_NAME wins


@pytest.mark.slow
def test_a_dead_workers_job_gets_a_recover_span(
        procs: Procs, client: Client, env: dict[str, str]) -> None:
    """A worker that leased the job and never beat again: the real scheduler hands the
    job back (reap.lua), with a ``recover`` span in the job's trace."""
    with receiving("http/protobuf") as otlp:
        traced = {**env, **otel_env(otlp, "http/protobuf")}
        enqueue(traced, "--id", "stranded", "--", "true")
        keys = client.keys
        client.store.heartbeat(keys.worker("ghost"), keys.workers, "ghost", 3.0, "i", {})
        fetched = client.store.fetch("ghost", ["default"])
        assert fetched is not None and fetched.id == "stranded"
        procs.scheduler({**traced, "QUEUECTL_SCHEDULER_INTERVAL": "0.1"})
        spans = otlp.wait_for(lambda got: any(s.name == "recover default" for s in got),
                              what="a recover span")
    send, recover = one(spans, "send default"), one(spans, "recover default")
    assert recover.trace_id == send.trace_id and recover.parent_id == send.span_id
    assert recover.attributes["messaging.queuectl.source"] == "requeued"
    assert recover.attributes["messaging.queuectl.lost_worker"] == "ghost"
    assert recover.service == "queuectl-scheduler"
    assert client.get("stranded").state is JobState.PENDING


def test_the_command_gets_traceparent_of_its_process_span(
        procs: Procs, client: Client, env: dict[str, str], tmp_path: Path) -> None:
    """A traced script joins the trace under the attempt that runs it; the enqueue joined
    the trace of the caller's TRACEPARENT and TRACESTATE (the environment carriers)."""
    seen = tmp_path / "seen"
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with receiving("http/protobuf") as otlp:
        traced = {**env, **otel_env(otlp, "http/protobuf")}
        procs.worker(traced)
        enqueue({**traced, "TRACEPARENT": caller, "TRACESTATE": "vendor=abc"},
                "--id", "traced", "--", f'echo "$TRACEPARENT $TRACESTATE" > {seen}')
        assert wait_ended(client, ["traced"])["traced"].state is JobState.COMPLETED
        spans = otlp.wait_for(lambda got: any(s.name == "process default" for s in got))
    send, run = one(spans, "send default"), one(spans, "process default")
    assert send.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert send.parent_id == "b7ad6b7169203331"
    parent, state = seen.read_text().split()
    version, trace_id, span_id, _flags = parent.split("-")
    assert (version, trace_id, span_id) == ("00", send.trace_id, run.span_id)
    assert state == "vendor=abc"


def test_without_tracing_the_job_still_carries_its_callers_context(
        procs: Procs, client: Client, env: dict[str, str], tmp_path: Path) -> None:
    """Nothing configured to export: the job stores the caller's TRACEPARENT, its command
    gets it back, and show prints its trace id. A bad context is ignored."""
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    procs.worker()
    enqueue({**env, "TRACEPARENT": caller}, "--id", "carried", "--",
            f'echo "${{TRACEPARENT:-none}}" > {tmp_path / "carried"}')
    enqueue({**env, "TRACEPARENT": "00-not-a-context"}, "--id", "plain", "--",
            f'echo "${{TRACEPARENT:-none}}" > {tmp_path / "plain"}')
    wait_ended(client, ["carried", "plain"])
    assert (tmp_path / "carried").read_text().strip() == caller
    assert (tmp_path / "plain").read_text().strip() == "none"
    assert client.get("carried").trace_context == caller
    assert client.get("plain").trace_context is None
    shown = json.loads(run_cli(env, ["show", "plain", "--json"]).out)
    assert check(shown, "show")["trace_id"] is None
