"""Workers killed, frozen, drained and poisoned in the middle of a run: nothing is lost.

Each test runs a few hundred short jobs (each appends its id to runs.txt) on real
worker processes with a scheduler running throughout, injects one fault, and checks
that every job reached its end state and ran at least once. Runs beyond that are
printed, and asserted only against what the fault makes unavoidable: a SIGKILL may
re-run exactly the jobs the killed worker held, read from its in-flight set
``queuectl:inflight:<worker>`` once it could no longer change it. Recovery times are
printed, never asserted.
"""

from __future__ import annotations

import shlex
import signal
import time

import pytest

from queuectl.core.models import Job, JobState
from queuectl.core.store import as_str
from tests.chaos.harness import Chaos, Lost, Worker
from tests.integration.procs import eventually

JOBS = 300
DISCARDED = "was cancelled or taken over; its result is discarded"


def short_jobs(chaos: Chaos, n: int = JOBS, tag: str = "j") -> list[str]:
    return chaos.enqueue(chaos.spec(f"{tag}{i:04d}", chaos.record()) for i in range(n))


def under_way(chaos: Chaos, at_least: int = 30) -> None:
    """Some jobs completed: the fault lands in the middle of the run, not before it."""
    eventually(lambda: chaos.completed_count() >= at_least, 30, what="the run is under way")


def assert_reaped(chaos: Chaos, lost: Lost) -> None:
    """The scheduler handed back every job of the dead worker and forgot the worker."""
    assert not chaos.held(lost.worker)
    assert chaos.client.redis.zscore(chaos.keys.workers, lost.worker) is None


def assert_rerun_only_held(chaos: Chaos, ids: list[str], lost: list[Lost], name: str) -> None:
    outcome = chaos.finish(name, dict.fromkeys(ids, 1))
    outcome.assert_nothing_lost()
    assert outcome.ids_in(JobState.COMPLETED) == sorted(ids)
    held = frozenset().union(*(g.held for g in lost))
    print(f"[chaos {name}] {len(outcome.duplicates)} duplicate(s) out of {len(held)} "
          f"job(s) held by the killed worker(s)")
    # A killed run may have got as far as its append; its re-run appends again. No other
    # job may run twice, and a held job at most twice (one kill, one re-run).
    assert set(outcome.duplicates) <= held, set(outcome.duplicates) - held
    assert set(outcome.duplicates.values()) <= {1}
    for job_id in held:
        job = outcome.jobs[job_id]
        # Reaped once, and a lost run consumes no retry.
        assert (job.lost, job.interrupted, job.attempts) == (1, 1, 2), job
    for gone in lost:
        assert_reaped(chaos, gone)


# -- 1. SIGKILL of one worker mid-job -------------------------------------------------------------

def test_sigkill_of_one_worker_mid_job_loses_nothing(chaos: Chaos) -> None:
    chaos.start_scheduler()
    workers = [chaos.start_worker(concurrency=3) for _ in range(3)]
    ids = short_jobs(chaos)
    under_way(chaos)
    victim = workers[0]
    chaos.wait_holding(victim)

    [lost] = chaos.take_out([victim])
    chaos.start_worker(concurrency=3)  # the replacement, as a Deployment would start one

    assert lost.held, "the victim held no job when it died: the test would prove nothing"
    chaos.recovery([lost])
    assert_rerun_only_held(chaos, ids, [lost], "sigkill-one-worker")
    assert all(w.proc.alive() for w in workers[1:])


# -- 2. SIGKILL of every worker at once -----------------------------------------------------------

def test_sigkill_of_every_worker_at_once_loses_nothing(chaos: Chaos) -> None:
    chaos.start_scheduler()
    workers = [chaos.start_worker(concurrency=3) for _ in range(3)]
    ids = short_jobs(chaos)
    under_way(chaos)
    for worker in workers:
        chaos.wait_holding(worker)

    lost = chaos.take_out(workers)
    left = len(ids) - chaos.completed_count()
    print(f"{left} job(s) not completed when every worker died")
    assert left > 0
    assert all(g.held for g in lost)
    for _ in range(2):
        chaos.start_worker(concurrency=3)

    chaos.recovery(lost)
    assert_rerun_only_held(chaos, ids, lost, "sigkill-all-workers")


# -- 3. SIGSTOP past the lease, then SIGCONT ------------------------------------------------------

def processing_under(chaos: Chaos, job_id: str, worker: Worker) -> Job:
    def check() -> Job | None:
        job = chaos.client.find(job_id)
        ok = job is not None and job.state is JobState.PROCESSING and job.worker == worker.id
        return job if ok else None

    found = eventually(check, 30, what=f"{job_id} processing under {worker.id}")
    assert found is not None
    return found


def ended(chaos: Chaos, job_id: str) -> Job:
    def check() -> Job | None:
        job = chaos.client.get(job_id)
        return job if job.state.ended else None

    found = eventually(check, 30, what=f"{job_id} ended")
    assert found is not None
    return found


@pytest.mark.parametrize("resume", ["after-new-attempt-ended", "while-new-attempt-runs"])
def test_a_frozen_worker_cannot_overwrite_the_newer_attempt(chaos: Chaos, resume: str) -> None:
    chaos.start_scheduler()
    old = chaos.start_worker(concurrency=1)
    # The id is appended at the end, so runs.txt counts runs that got through the sleep.
    # The marker file says the command itself has started (not only the lease).
    started = chaos.marks / "slow.1"
    body = ('echo "start $QUEUECTL_JOB_ATTEMPT"; '
            f'touch {shlex.quote(str(chaos.marks))}/slow.$QUEUECTL_JOB_ATTEMPT; '
            'sleep 4; echo "end $QUEUECTL_JOB_ATTEMPT"')
    [job_id] = chaos.enqueue([chaos.spec("slow", chaos.record_at_end(body))])
    first = processing_under(chaos, job_id, old)
    # Frozen with its command running. (Frozen between fetch and spawn instead, it would
    # start the stale run only when resumed, and lose it at its first lease check.)
    eventually(started.exists, 30, what="the first attempt's command runs")

    # SIGSTOP freezes the worker's Python process only: the job runs in its own session
    # and goes on. The frozen worker stops beating, so the scheduler reaps it after the
    # TTL (1 s) and the new worker takes the job over with a newer lease.
    [lost] = chaos.take_out([old], signal.SIGSTOP)
    assert lost.held == {job_id}
    new = chaos.start_worker(concurrency=1)
    second = processing_under(chaos, job_id, new)
    chaos.recovery([lost])
    assert second.lease == first.lease + 1
    assert (second.attempts, second.lost, second.interrupted) == (2, 1, 1)

    if resume == "after-new-attempt-ended":
        done = ended(chaos, job_id)
        # The frozen worker's child finished on its own meanwhile: both runs got to the end.
        eventually(lambda: chaos.runs()[job_id] == 2, 10, what="the old attempt's run ended")
        tail = chaos.client.logs(job_id)
        old.proc.signal(signal.SIGCONT)
        # Its complete.lua finds a newer lease and refuses: nothing is written.
        eventually(lambda: f"job {job_id} {DISCARDED}" in old.proc.stderr(), 15,
                   what="the resumed worker's result is refused")
        assert chaos.client.get(job_id) == done, "the stale worker changed the record"
        assert chaos.client.logs(job_id) == tail, "the stale worker changed the log tail"
        runs = 2
    else:
        old.proc.signal(signal.SIGCONT)
        # Its next log shipment finds the lease gone: it kills its own stale run (long
        # before that run's 4 s sleep ends) and reports nothing.
        eventually(lambda: f"job {job_id} {DISCARDED}" in old.proc.stderr(), 15,
                   what="the resumed worker drops its stale run")
        assert chaos.client.get(job_id).state is JobState.PROCESSING
        assert chaos.client.get(job_id).lease == second.lease
        done = ended(chaos, job_id)
        runs = 1

    assert done.state is JobState.COMPLETED
    assert (done.worker, done.lease, done.attempts) == (new.id, second.lease, 2)
    assert (done.exit_code, done.lost, done.interrupted) == (0, 1, 1)
    assert chaos.runs()[job_id] == runs
    stats = chaos.client.redis.hget(chaos.keys.stats, "completed:default")
    assert stats == b"1", "completed exactly once"
    assert chaos.client.redis.zcard(chaos.keys.completed) == 1
    kept = chaos.client.logs(job_id).data
    print(f"[{resume}] Redis log tail of {job_id}:\n{kept.decode(errors='replace')}")
    assert kept.endswith(b"end 2\n"), kept
    assert f"--- attempt 2 of job {job_id} on {new.id} ".encode() in kept
    # The resumed worker carries on as a healthy worker with nothing held.
    chaos.wait_beating(old)
    assert not chaos.held(old.id)
    print(f"old worker log:\n{old.proc.stderr()[-1500:]}")


# -- 4. SIGTERM during long jobs ------------------------------------------------------------------

@pytest.mark.parametrize("grace", ["10", "0.5"], ids=["grace-outlasts-jobs", "grace-expires"])
def test_sigterm_during_long_jobs_loses_nothing(chaos: Chaos, grace: str) -> None:
    chaos.start_scheduler()
    draining = chaos.start_worker(concurrency=2, env={"QUEUECTL_SHUTDOWN_GRACE": grace})
    long_ids = chaos.enqueue(chaos.spec(f"long{i}", chaos.record_at_end("sleep 2"))
                             for i in range(2))
    eventually(lambda: chaos.held(draining.id) == set(long_ids), 30,
               what="the draining worker runs both long jobs")
    ids = long_ids + short_jobs(chaos, 200)
    other = chaos.start_worker(concurrency=3)

    asked = time.monotonic()
    draining.proc.signal(signal.SIGTERM)
    assert draining.proc.wait_exit(30) == 0
    print(f"[grace {grace}s] worker exited {time.monotonic() - asked:.2f}s after SIGTERM")
    assert not chaos.held(draining.id)
    assert chaos.client.redis.zscore(chaos.keys.workers, draining.id) is None

    outcome = chaos.finish(f"sigterm-grace-{grace}", dict.fromkeys(ids, 1))
    outcome.assert_nothing_lost()
    assert outcome.ids_in(JobState.COMPLETED) == sorted(ids)
    assert outcome.duplicates == {}
    for job_id in long_ids:
        job = outcome.jobs[job_id]
        if grace == "10":
            # Drained: the run finished where it was, it was not handed back.
            assert (job.worker, job.attempts, job.interrupted) == (draining.id, 1, 0), job
        else:
            # Grace over: stopped, handed back, run again elsewhere, no retry consumed.
            assert (job.worker, job.attempts, job.interrupted) == (other.id, 2, 1), job
    short = [outcome.jobs[i] for i in ids if i not in long_ids]
    assert {j.worker for j in short} == {other.id}, "a draining worker fetches nothing new"


# -- 8. a poison job that kills its worker --------------------------------------------------------

def test_a_job_that_kills_its_worker_ends_in_the_dlq_after_max_lost(chaos: Chaos) -> None:
    chaos.config(max_lost="2")
    chaos.start_scheduler()
    live = [chaos.start_worker(concurrency=2) for _ in range(2)]
    ids = short_jobs(chaos, 20)
    # The job's shell is the worker's direct child, so $PPID is the worker process.
    [poison] = chaos.enqueue([chaos.spec("poison", chaos.record("kill -9 $PPID"))])
    ids += short_jobs(chaos, 60, tag="k")

    # Keep two workers running, as a Deployment would: replace each one that dies.
    deaths: list[Lost] = []
    deadline = time.monotonic() + 60
    while not (job := chaos.client.get(poison)).state.ended:
        assert time.monotonic() < deadline, f"the poison job is still {job.state}"
        dead = [w for w in live if not w.proc.alive()]
        if dead:
            # Read their sets before anything else: the reaper empties them within ~1 s.
            at = chaos.server_time()
            deaths += [Lost(w.id, at, chaos.held(w.id), frozenset()) for w in dead]
            live = [w for w in live if w not in dead]
            live += [chaos.start_worker(concurrency=2, wait=False) for _ in dead]
        time.sleep(0.02)

    print(f"workers killed by the poison job: {[(d.worker, sorted(d.held)) for d in deaths]}")
    assert job.state is JobState.DEAD
    assert (job.lost, job.attempts) == (2, 2)
    assert job.last_error is not None and "2 runs lost their worker" in job.last_error
    assert len(deaths) == 2, "one death per lost run, then no more"
    assert all(poison in d.held for d in deaths)
    chaos.recovery(deaths)

    # The reaper cannot tell which of a dead worker's jobs killed it: a job held by the
    # same worker both times lost its worker max-lost times too, and is buried with the
    # poison job. Requeued side by side at the front, the two are often fetched together
    # by the next worker. Such a bystander may not even have started (the kill came
    # between its fetch and its spawn), so it is expected to run 0 or more times.
    bystanders = sorted(frozenset.intersection(*(d.held for d in deaths)) - {poison})
    expected = {**dict.fromkeys(ids, 1), poison: 2, **dict.fromkeys(bystanders, 0)}
    outcome = chaos.finish("poison", expected)
    print(f"[chaos poison] bystanders buried with the poison job: {bystanders}")
    outcome.assert_nothing_lost()
    assert outcome.ids_in(JobState.DEAD) == sorted([poison, *bystanders])
    assert sorted(as_str(i) for i in chaos.client.redis.lrange(chaos.keys.dead_letter, 0, -1)) \
        == sorted([poison, *bystanders])
    assert all(outcome.jobs[i].lost == 2 for i in bystanders)
    assert outcome.ids_in(JobState.COMPLETED) == sorted(set(ids) - set(bystanders))
    held = frozenset().union(*(d.held for d in deaths)) - {poison}
    dup = {i for i in outcome.duplicates if i not in bystanders}
    print(f"[chaos poison] {len(dup)} duplicate(s) out of {len(held)} other "
          f"job(s) held by the killed workers")
    assert dup <= held
    assert all(w.proc.alive() for w in live)
