"""Redis shut down and started again from its append-only file in the middle of a run.

The workers and the scheduler keep running through the outage. With ``appendfsync
always`` every write Redis acknowledged is on disk before the reply, so nothing a
client was told may be lost: every job must end and must have run. Workers stay
alive throughout, so no job may be handed back as lost either (the scheduler gives
live workers one TTL to beat again after an outage before it reaps anyone).
"""

from __future__ import annotations

import time

import pytest

from queuectl.core.models import JobState
from tests.chaos.harness import Chaos
from tests.integration.procs import eventually


@pytest.mark.parametrize("down", [0.0, 1.5], ids=["quick-restart", "down-1.5s"])
def test_redis_shutdown_and_restart_mid_run_loses_nothing(chaos: Chaos, down: float) -> None:
    chaos.config(backoff_base="0.5", backoff_factor="1")
    scheduler = chaos.start_scheduler()
    workers = [chaos.start_worker(concurrency=3) for _ in range(3)]
    plain = chaos.enqueue(chaos.spec(f"j{i:04d}", chaos.record()) for i in range(300))
    delayed = chaos.enqueue(chaos.spec(f"d{i:04d}", chaos.record(), delay=1 + (i % 10) / 5)
                            for i in range(30))
    retried = chaos.enqueue(chaos.spec(f"r{i:04d}", chaos.fail_once(), max_retries=2)
                            for i in range(30))
    eventually(lambda: chaos.completed_count() >= 60, 30, what="the run is under way")

    # SHUTDOWN flushes the AOF and exits; the same port comes back with the same data.
    # A quick restart falls inside redis-py's own retries (about 0.3 s); 1.5 s does not,
    # so every process sees errors and has to recover by itself.
    stopped = time.monotonic()
    chaos.server.stop()
    time.sleep(down)
    chaos.server.start()
    print(f"Redis was down {time.monotonic() - stopped:.2f}s")

    expected = {**dict.fromkeys(plain + delayed, 1), **dict.fromkeys(retried, 2)}
    outcome = chaos.finish(f"redis-restart-{down:g}s", expected, timeout=90)
    print(f"duplicates after a Redis restart: {outcome.duplicates}")
    outcome.assert_nothing_lost()
    assert len(outcome.ids_in(JobState.COMPLETED)) == len(expected)
    handed_back = sorted(i for i, j in outcome.jobs.items() if j.lost)
    assert not handed_back, f"live workers were reaped after the outage: {handed_back[:10]}"
    assert scheduler.alive() and all(w.proc.alive() for w in workers)


def test_repeated_quick_restarts_under_load_strand_no_job(chaos: Chaos) -> None:
    # Many short jobs keep every worker thread fetching and completing, so that some
    # command is always in flight when Redis shuts down. Redis may run a command and
    # exit before its reply is sent (about one per restart with 16 busy clients, seen
    # by counting INCRs); after a restart faster than redis-py's own retries (about
    # 0.3 s) the client retries that command and QueueCTL never sees an error.
    chaos.start_scheduler()
    workers = [chaos.start_worker(concurrency=6) for _ in range(3)]
    ids = chaos.enqueue(chaos.spec(f"j{i:05d}", chaos.record(":")) for i in range(4000))
    eventually(lambda: chaos.completed_count() >= 100, 30, what="the run is under way")
    # Each restart loses the replies of a few commands at most; twenty make it likely
    # (not certain) that one of them was a fetch that leased a job.
    restarts = 0
    while restarts < 20 and chaos.completed_count() < len(ids) - 200:
        chaos.server.restart()
        restarts += 1
        time.sleep(0.3)
    print(f"{restarts} quick restarts under load")

    outcome = chaos.finish("quick-restarts", dict.fromkeys(ids, 1), timeout=30)
    outcome.assert_nothing_lost()
    assert outcome.duplicates == {}
    assert all(w.proc.alive() for w in workers)
