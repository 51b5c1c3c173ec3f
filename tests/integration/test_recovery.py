"""Recovery paths of a live worker: cancelling a running job, lost fetch replies."""

from __future__ import annotations

from pathlib import Path

from queuectl.core.client import Client
from queuectl.core.models import JobSpec, JobState
from queuectl.core.settings import Settings
from queuectl.worker.pool import Worker

from .procs import Procs, eventually, process_gone, wait_registered, wait_state


def test_cancelling_a_running_job_stops_its_process_group(
        procs: Procs, client: Client, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    worker = procs.worker({"QUEUECTL_CONCURRENCY": "1"})
    wait_registered(client, worker)
    job = client.enqueue(f"echo $$ > {pidfile}; exec sleep 60")
    wait_state(client, job.id, JobState.PROCESSING)
    pid = int(eventually(lambda: pidfile.exists() and pidfile.read_text().strip(),
                         what="the job wrote its pid"))

    assert client.cancel(job.id) is JobState.PROCESSING
    # The worker learns of it at its next lease check (output shipment, every second).
    eventually(lambda: process_gone(pid), what=f"job process {pid} killed")
    record = client.get(job.id)
    assert record.state is JobState.CANCELLED
    assert record.exit_code is None, "the stopped run must not report over the cancel"

    # The slot is free again and the worker lives on.
    after = client.enqueue("echo after")
    eventually(lambda: client.get(after.id).state is JobState.COMPLETED, what="next job ran")
    assert worker.alive()
    assert "cancelled or taken over" in worker.stderr()


def test_a_job_whose_fetch_reply_was_lost_is_handed_back(
        client: Client, settings: Settings) -> None:
    """A fetch that Redis ran but whose reply never arrived leaves a job leased to a
    live worker that does not know it; the worker's reconcile hands it back."""
    worker = Worker(client.store, settings, 1, ["default"])
    client.store.enqueue(JobSpec(id="ghost", command="true"))
    client.store.enqueue(JobSpec(id="mine", command="true"))
    lost = client.store.fetch(worker.id, ["default"])  # the reply "lost in transit"
    assert lost is not None and lost.id == "ghost"

    worker.reports.reconcile()  # what the worker's heartbeat runs on every beat
    back = client.get("ghost")
    assert back.state is JobState.PENDING
    assert back.interrupted == 1, "the run never started, so it uses no retry"
    assert client.redis.lrange(client.keys.queue("default"), 0, -1) == [b"ghost", b"mine"]
    assert client.redis.scard(client.keys.inflight(worker.id)) == 0


def test_a_job_whose_fetch_reply_is_on_its_way_is_kept(client: Client, settings: Settings) -> None:
    """An idle slot's fetch waits behind its BLPOP: Redis may have run it and leased a job
    whose reply the slot has not read yet. Reconcile keeps such a job, and one leased by
    a call that began after it looked, and hands it back only once the call has ended
    without it."""
    worker = Worker(client.store, settings, 1, ["default"])
    reports = worker.reports
    client.store.enqueue(JobSpec(id="awaited", command="true"))
    client.store.enqueue(JobSpec(id="later", command="true"))
    tag = reports._call()  # the call is sent; Redis runs it, the reply is not read yet
    assert client.store.fetch(worker.id, ["default"], str(tag)) is not None
    # A call begun after reconcile took its snapshot has the next number.
    assert client.store.fetch(worker.id, ["default"], str(tag + 1)) is not None

    reports.reconcile()
    assert client.get("awaited").state is JobState.PROCESSING
    assert client.get("later").state is JobState.PROCESSING

    reports._answered(tag, None)  # the reply never came: the call ended without a job
    assert reports._call() == tag + 1  # and the later call is now under way
    reports.reconcile()
    assert client.get("awaited").state is JobState.PENDING
    assert client.get("later").state is JobState.PROCESSING


def test_a_lost_job_with_an_unreadable_lease_goes_to_quarantine(
        client: Client, settings: Settings) -> None:
    """"²" is a digit to str.isdigit but not to int(): reconcile must not trip on it."""
    worker = Worker(client.store, settings, 1, ["default"])
    client.store.enqueue(JobSpec(id="ghost", command="true"))
    assert client.store.fetch(worker.id, ["default"]) is not None  # the reply "lost"
    client.redis.hset(client.keys.job("ghost"), "lease", "\u00b2")

    worker.reports.reconcile()
    assert client.redis.zscore(client.keys.quarantine, "ghost") is not None
    assert client.redis.scard(client.keys.inflight(worker.id)) == 0
