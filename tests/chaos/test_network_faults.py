"""A connection cut after Redis ran a fetch and before its reply reached the worker.

A Redis restart, a failover, a proxy or a flaky network can all drop a reply whose
command Redis has already run. For ``fetch.lua`` that leases a job to the worker
(state ``processing``, id in ``queuectl:inflight:<worker>``) while the worker never
learns of it. The worker is alive and keeps beating, so the scheduler never reaps it;
only the worker itself can notice (``Worker.reconcile``). Nothing may be lost either way.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queuectl.core.client import Client
from queuectl.core.errors import ConflictError
from queuectl.core.models import JobState
from queuectl.core.settings import Settings
from tests.chaos.harness import PREFIX, Chaos
from tests.chaos.netcut import CutProxy, script_sha
from tests.integration.procs import eventually


@pytest.fixture
def proxy(chaos: Chaos) -> Iterator[CutProxy]:
    cut = CutProxy(chaos.server.port)
    yield cut
    cut.close()


def test_a_job_whose_fetch_reply_was_lost_still_runs(chaos: Chaos, proxy: CutProxy) -> None:
    chaos.start_scheduler()
    [stranded] = chaos.enqueue([chaos.spec("cut", chaos.record())])
    # "*12": the reply of a fetch that leased a job (an empty queue answers "*2").
    proxy.arm(script_sha("fetch"), b"*12\r\n")
    worker = chaos.start_worker(concurrency=1, env={"QUEUECTL_REDIS_URL": proxy.url})
    eventually(proxy.cut.is_set, 30, what="a fetch reply was cut")

    leased = chaos.client.get(stranded)
    print(f"after the cut: {stranded} is {leased.state.value} under {leased.worker}, "
          f"held by {worker.id}: {sorted(chaos.held(worker.id))}")
    assert (leased.state, leased.worker) == (JobState.PROCESSING, worker.id)
    # The worker goes on working: a job enqueued now runs at once.
    [later] = chaos.enqueue([chaos.spec("later", chaos.record())])

    # Generous: a worker that noticed would hand the job back within one heartbeat (0.2 s).
    outcome = chaos.finish("fetch-reply-lost", {stranded: 1, later: 1}, timeout=15)
    outcome.assert_nothing_lost()
    assert worker.proc.alive()


def test_an_enqueue_whose_reply_was_lost_is_not_reported_as_refused(
        chaos: Chaos, proxy: CutProxy) -> None:
    # The same cut on the client side: Redis stored the job, the reply was lost, and the
    # client's connection retry runs enqueue.lua again. The caller must be told the job
    # was enqueued (it was), not that its own new job "already exists": a caller told
    # "refused" enqueues again under a fresh id, and the work runs twice.
    via_proxy = Client.connect(Settings(redis_url=proxy.url, key_prefix=PREFIX))
    try:
        proxy.arm(script_sha("enqueue"), b"*3\r\n:0\r\n")  # {0, ...}: stored as pending
        try:
            job = via_proxy.enqueue(chaos.record(), job_id="once")
        except ConflictError as exc:
            stored = chaos.client.get("once")
            pytest.fail(f"enqueue reported {exc!r} for the job it had just stored "
                        f"(state {stored.state.value}); lost reply cut: {proxy.cut.is_set()}")
        assert proxy.cut.is_set()
        assert job.state is JobState.PENDING
    finally:
        via_proxy.redis.close()
