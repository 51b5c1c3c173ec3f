"""The scheduler killed with retries pending, and two schedulers racing over one run.

Retries use jobs that fail their first run and succeed on the next (a marker file
remembers the first run), so each of them must run exactly twice: a retry that is
never promoted shows up as a job that never ends, a retry promoted twice as a third
run or as promotion counters that add up to more than the number of promotions due.
"""

from __future__ import annotations

import signal
import time

from queuectl.core.models import JobState
from tests.chaos.harness import Chaos
from tests.integration.procs import describe_jobs, eventually, load_jobs


def fail_once_jobs(chaos: Chaos, n: int, tag: str = "r") -> list[str]:
    return chaos.enqueue(chaos.spec(f"{tag}{i:04d}", chaos.fail_once(), max_retries=2)
                         for i in range(n))


# -- 5. SIGKILL of the scheduler while retries are pending ----------------------------------------

def test_sigkill_of_the_scheduler_with_retries_pending(chaos: Chaos) -> None:
    # Retry after 1 s: long enough that retries pile up in the retry set while the
    # scheduler is dead, short enough to keep the test quick.
    chaos.config(backoff_base="1", backoff_factor="1")
    first = chaos.start_scheduler()
    for _ in range(2):
        chaos.start_worker(concurrency=3)
    ids = fail_once_jobs(chaos, 150)
    r, k = chaos.client.redis, chaos.keys
    # Killed mid-flow: it has promoted retries that completed, and more are waiting.
    eventually(lambda: chaos.completed_count() >= 10 and r.zcard(k.retry_queue) >= 20, 30,
               what="retries promoted and retries pending")

    first.signal(signal.SIGKILL)
    first.wait_exit()
    # With no scheduler, every first run ends and its retry waits in the retry set.
    settled = {JobState.FAILED, JobState.COMPLETED}
    eventually(lambda: {j.state for j in load_jobs(chaos.client, ids).values()} <= settled,
               30, what="every job ran and is waiting for its retry or completed",
               describe=lambda: describe_jobs(chaos.client, ids))
    stranded = int(r.zcard(k.retry_queue))
    print(f"{stranded} retr(ies) pending when the only scheduler was killed")
    assert stranded > 0
    # Once they are all overdue, they are still there: nothing else promotes them.
    last_due = float(r.zrange(k.retry_queue, -1, -1, withscores=True)[0][1])
    eventually(lambda: chaos.server_time() > last_due + 0.5, 10, what="every retry overdue")
    assert r.zcard(k.retry_queue) == stranded

    restarted = time.monotonic()
    chaos.start_scheduler(wait=False)
    eventually(lambda: r.zcard(k.retry_queue) == 0, 30, what="the new scheduler promotes")
    print(f"every stranded retry promoted {time.monotonic() - restarted:.2f}s after a new "
          "scheduler was started (process start-up included)")
    outcome = chaos.finish("sigkill-scheduler", dict.fromkeys(ids, 2))
    outcome.assert_nothing_lost()
    assert outcome.ids_in(JobState.COMPLETED) == sorted(ids)
    assert outcome.duplicates == {}, "each job ran exactly twice"
    assert all(j.attempts == 2 for j in outcome.jobs.values())
    assert r.zcard(k.retry_queue) == 0


# -- 6. two schedulers at once --------------------------------------------------------------------

def test_two_schedulers_promote_everything_exactly_once(chaos: Chaos) -> None:
    chaos.config(backoff_base="0.5", backoff_factor="1")
    # Small batches: the two replicas race over the same due ids round after round.
    schedulers = [chaos.start_scheduler({"QUEUECTL_SCHEDULER_BATCH": "5"}) for _ in range(2)]
    for _ in range(3):
        chaos.start_worker(concurrency=3)
    delayed = chaos.enqueue(chaos.spec(f"d{i:04d}", chaos.record(), delay=0.5 + (i % 20) / 10)
                            for i in range(100))
    retried = fail_once_jobs(chaos, 100)
    plain = chaos.enqueue(chaos.spec(f"p{i:04d}", chaos.record()) for i in range(100))

    expected = {**dict.fromkeys(delayed + plain, 1), **dict.fromkeys(retried, 2)}
    outcome = chaos.finish("two-schedulers", expected)
    outcome.assert_nothing_lost()
    assert len(outcome.ids_in(JobState.COMPLETED)) == len(expected)
    assert outcome.duplicates == {}, "no job ran more often than it had to"
    assert all(outcome.jobs[i].attempts == n for i, n in expected.items())

    # A job promoted twice would sit in its queue twice and the second copy would be
    # dropped by fetch, unseen in the run counts; the promotion counters see it. Each
    # replica counts only what its own promote.lua moved, published on its next beat.
    due = len(delayed) + len(retried)
    eventually(lambda: sum(chaos.promoted(schedulers).values()) == due, 10,
               what=f"the promotion counters add up to {due}",
               describe=lambda: str(chaos.promoted(schedulers)))
    print(f"promoted per scheduler: {chaos.promoted(schedulers)}")
    assert all(p.alive() for p in schedulers)
