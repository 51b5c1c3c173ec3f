#!/usr/bin/env python3
"""Soak test: thousands of jobs over several minutes while faults hit at random. Not run in CI.

    python scripts/soak.py --minutes 3 --jobs 3000

Starts its own redis-server (AOF, ``appendfsync always``) on a free port, a scheduler
(sometimes two) and N workers, all real processes. It enqueues the jobs over most of
the run (plain ones, ones that fail once and succeed on retry, delayed ones) and
meanwhile, at random intervals, injects one fault at a time:

    sigkill-worker     SIGKILL a worker, start a replacement
    sigstop-worker     SIGSTOP a worker past its TTL (reaped, its jobs taken over), SIGCONT
    sigterm-worker     SIGTERM a worker (it drains), start a replacement
    sigkill-scheduler  SIGKILL a scheduler, start a new one a moment later
    second-scheduler   start a second scheduler, or stop (SIGTERM) one of two
    redis-restart      SHUTDOWN Redis, start it again on the same AOF

Then it waits for everything to drain and prints what was enqueued, completed,
dead (DLQ), LOST (never ended, or ended without running: must be 0), duplicated
(ran more often than needed; only jobs held by a killed or frozen worker may) and the
recovery time of each fault kind (p50 / max).

Every job appends its id to runs.txt when it runs: that file, not Redis, says what ran.

Exit status: 0 clean; 1 a job was lost; 2 a job ran more often than any fault explains;
3 `queuectl doctor` found the store inconsistent at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the harness lives in the tests package

from queuectl.core import doctor  # noqa: E402
from queuectl.core.models import Job, JobSpec, JobState  # noqa: E402
from tests.chaos.harness import Chaos, Lost, Outcome, Worker  # noqa: E402
from tests.integration.procs import Proc, load_jobs  # noqa: E402
from tests.redis_server import LocalRedis  # noqa: E402

TICK = 0.05
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
WORKER_ENV = {
    # Jobs last at most 0.3 s: a drain always finishes them, so SIGTERM never re-runs one.
    "QUEUECTL_SHUTDOWN_GRACE": "10",
}
# What each fault's recovery time measures.
RECOVERY = {
    "sigkill-worker": "kill -> every job it held running again elsewhere",
    "sigstop-worker": "stop -> every job it held running again elsewhere",
    "sigterm-worker": "SIGTERM -> worker drained and exited 0",
    "sigkill-scheduler": "kill -> a scheduler beats and nothing due waits (0 if a 2nd ran)",
    "redis-restart": "SHUTDOWN -> every running worker beats again",
}
FAULTS = {  # kind -> weight
    "sigkill-worker": 4,
    "sigstop-worker": 3,
    "sigterm-worker": 2,
    "sigkill-scheduler": 2,
    "second-scheduler": 1,
    "redis-restart": 2,
}


@dataclass
class Watch:
    """A recovery being timed: ``check`` returns the seconds it took once it is over."""

    kind: str
    check: Callable[[], float | None]
    since: float = field(default_factory=time.monotonic)


@dataclass
class Soak:
    chaos: Chaos
    rng: random.Random
    concurrency: int
    started: float = field(default_factory=time.monotonic)
    workers: list[Worker] = field(default_factory=list)
    schedulers: list[Proc] = field(default_factory=list)
    frozen: dict[str, tuple[Worker, float]] = field(default_factory=dict)  # id -> (w, resume)
    later: list[tuple[float, Callable[[], None]]] = field(default_factory=list)
    expected: dict[str, int] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    watches: list[Watch] = field(default_factory=list)
    recoveries: dict[str, list[float]] = field(default_factory=dict)
    suspects: set[str] = field(default_factory=set)  # held by a killed or frozen worker
    faulted: set[str] = field(default_factory=set)  # ids of the workers killed or frozen
    failures: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)

    # -- jobs ---------------------------------------------------------------------------------
    def enqueue(self, count: int) -> None:
        c = self.chaos
        specs: list[JobSpec] = []
        for _ in range(count):
            n = len(self.expected) + len(specs)
            roll = self.rng.random()
            if roll < 0.15:
                specs.append(c.spec(f"r{n:05d}", c.fail_once(), max_retries=3))
                self.kinds["fail-once"] += 1
            elif roll < 0.30:
                specs.append(c.spec(f"d{n:05d}", c.record(), delay=self.rng.uniform(1, 20)))
                self.kinds["delayed"] += 1
            else:
                pause = f"sleep {self.rng.choice(['0.05', '0.1', '0.2', '0.3'])}"
                specs.append(c.spec(f"j{n:05d}", c.record(pause)))
                self.kinds["plain"] += 1
        for spec in specs:
            self.expected[spec.id] = 2 if spec.id.startswith("r") else 1
        c.enqueue(specs)

    # -- processes ---------------------------------------------------------------------------
    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.proc.alive() and w.id not in self.frozen]

    def victim(self) -> Worker | None:
        """A running worker, preferably one holding jobs (a fault to an idle one shows less)."""
        running = self.running()
        busy = [w for w in running if self.chaos.held(w.id)]
        return self.rng.choice(busy or running) if running else None

    def take_out(self, worker: Worker, sig: signal.Signals) -> Lost:
        with contextlib.redirect_stdout(io.StringIO()):  # the harness prints; say() does here
            [lost] = self.chaos.take_out([worker], sig)
        return lost

    def add_worker(self) -> Worker:
        worker = self.chaos.start_worker(self.concurrency, WORKER_ENV, wait=False)
        self.workers.append(worker)
        return worker

    def watch_held(self, kind: str, lost: Lost) -> None:
        self.suspects |= lost.held
        if lost.held:  # nothing held, nothing to recover: no time to record
            self.watches.append(Watch(kind, lambda: self.chaos.resumed([lost])))

    # -- faults -------------------------------------------------------------------------------
    def inject(self) -> None:
        kinds, weights = zip(*FAULTS.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        getattr(self, "_" + kind.replace("-", "_"))()

    def _sigkill_worker(self) -> None:
        victim = self.victim()
        if victim is None:
            return
        lost = self.take_out(victim, signal.SIGKILL)
        self.faulted.add(victim.id)
        replacement = self.add_worker()
        self.faults["sigkill-worker"] += 1
        self.say(f"sigkill-worker {victim.id} (held {len(lost.held)}); "
                 f"replacement {replacement.id}")
        self.watch_held("sigkill-worker", lost)

    def _sigstop_worker(self) -> None:
        victim = self.victim()
        if victim is None or len(self.running()) < 2:
            return  # keep one worker running
        lost = self.take_out(victim, signal.SIGSTOP)
        self.faulted.add(victim.id)
        # Past the TTL (1 s) so that the scheduler reaps it and its jobs are taken over.
        frozen_for = self.rng.uniform(1.5, 4.0)
        self.frozen[victim.id] = (victim, time.monotonic() + frozen_for)
        self.faults["sigstop-worker"] += 1
        self.say(f"sigstop-worker {victim.id} (held {len(lost.held)}) for {frozen_for:.1f}s")
        self.watch_held("sigstop-worker", lost)

    def _sigterm_worker(self) -> None:
        victim = self.victim()
        if victim is None:
            return
        at = time.monotonic()
        victim.proc.signal(signal.SIGTERM)
        replacement = self.add_worker()
        self.faults["sigterm-worker"] += 1
        self.say(f"sigterm-worker {victim.id}; replacement {replacement.id}")

        def drained() -> float | None:
            code = victim.proc.popen.poll()
            if code is None:
                return None
            if code != 0:
                self.failures.append(f"{victim.id} exited {code} after SIGTERM")
            return time.monotonic() - at

        self.watches.append(Watch("sigterm-worker", drained))

    def _sigkill_scheduler(self) -> None:
        live = [s for s in self.schedulers if s.alive()]
        if not live:
            return  # the last one was killed and its successor is not started yet
        victim = self.rng.choice(live)
        at = time.monotonic()
        victim.signal(signal.SIGKILL)
        victim.wait_exit(10)
        self.schedulers.remove(victim)
        delay = self.rng.uniform(0.0, 3.0)
        self.later.append((at + delay, self._add_scheduler))
        self.faults["sigkill-scheduler"] += 1
        self.say(f"sigkill-scheduler {victim.name}; a new one in {delay:.1f}s")
        self.watches.append(Watch("sigkill-scheduler", lambda: self._promoting(at)))

    def _promoting(self, since: float) -> float | None:
        """Once a scheduler beats and nothing due waits longer than a round: elapsed."""
        c, k = self.chaos, self.chaos.keys
        if not any(c.client.redis.exists(k.scheduler(c.scheduler_id(s)))
                   for s in self.schedulers if s.alive()):
            return None
        overdue = c.server_time() - 1.0
        for key in (k.retry_queue, k.delayed):
            if c.client.redis.zcount(key, "-inf", overdue):
                return None
        return time.monotonic() - since

    def _add_scheduler(self) -> None:
        self.schedulers.append(self.chaos.start_scheduler(wait=False))

    def _second_scheduler(self) -> None:
        live = [s for s in self.schedulers if s.alive()]
        if len(live) >= 2:
            victim = self.rng.choice(live)
            victim.signal(signal.SIGTERM)
            self.schedulers.remove(victim)
            self.say(f"second-scheduler: stop {victim.name} (SIGTERM), one left")
        else:
            self._add_scheduler()
            self.say(f"second-scheduler: {self.schedulers[-1].name} joins, two running")
        self.faults["second-scheduler"] += 1

    def _redis_restart(self) -> None:
        down = self.rng.choice([0.0, self.rng.uniform(0.2, 2.5)])
        at = time.monotonic()
        self.chaos.server.stop()
        time.sleep(down)
        self.chaos.server.start()
        up = self.chaos.server_time()
        self.faults["redis-restart"] += 1
        self.say(f"redis-restart (down {time.monotonic() - at:.2f}s)")

        def back() -> float | None:
            c = self.chaos
            for worker in self.running():
                beat = c.client.redis.zscore(c.keys.workers, worker.id)
                if beat is None or beat < up:
                    return None
            return time.monotonic() - at

        self.watches.append(Watch("redis-restart", back))

    # -- the loop ------------------------------------------------------------------------------
    def step(self) -> None:
        """Resume frozen workers, run due actions, finish recovery timings."""
        now = time.monotonic()
        for worker_id, (worker, resume) in list(self.frozen.items()):
            if now >= resume:
                worker.proc.signal(signal.SIGCONT)
                del self.frozen[worker_id]
                self.say(f"sigcont {worker_id}")
        for item in [x for x in self.later if x[0] <= now]:
            self.later.remove(item)
            item[1]()
        for watch in list(self.watches):
            try:
                took = watch.check()
            except REDIS_ERRORS:
                continue
            if took is not None:
                self.recoveries.setdefault(watch.kind, []).append(took)
                self.watches.remove(watch)
            elif now - watch.since > 120:
                self.failures.append(f"{watch.kind} did not recover within 120s")
                self.watches.remove(watch)

    def settle(self) -> None:
        """No more faults: resume every frozen worker, finish scheduled actions."""
        for worker, _ in self.frozen.values():
            worker.proc.signal(signal.SIGCONT)
        self.frozen.clear()
        for _, action in self.later:
            action()
        self.later.clear()
        while len(self.running()) < 2:
            self.add_worker()
        if not any(s.alive() for s in self.schedulers):
            self._add_scheduler()


def run(args: argparse.Namespace, workdir: Path) -> int:
    server = LocalRedis(workdir / "redis", appendonly=True).start()
    chaos = Chaos(server, workdir)
    # A seeded generator: a failing fault schedule can be replayed with --seed.
    soak = Soak(chaos, random.Random(args.seed), args.concurrency)  # noqa: S311
    try:
        return drive(soak, args)
    finally:
        # Procs.cleanup prints every process's stderr tail: keep the report readable.
        with contextlib.redirect_stdout(io.StringIO()):
            chaos.close()
        server.stop()


def drive(soak: Soak, args: argparse.Namespace) -> int:
    chaos = soak.chaos
    chaos.config(backoff_base="0.5", backoff_factor="2")
    soak.schedulers.append(chaos.start_scheduler())
    for _ in range(args.workers):
        soak.add_worker()
    duration = args.minutes * 60
    enqueue_for = duration * 0.8
    next_fault = time.monotonic() + soak.rng.uniform(2, 6)
    soak.say(f"{args.workers} workers x {args.concurrency}, {args.jobs} jobs over "
             f"{enqueue_for:.0f}s, faults for {duration:.0f}s, Redis {chaos.server.url}")
    while (elapsed := time.monotonic() - soak.started) < duration:
        try:
            due = min(args.jobs, int(args.jobs * elapsed / enqueue_for))
            if due > len(soak.expected):
                soak.enqueue(due - len(soak.expected))
            if time.monotonic() >= next_fault:
                soak.inject()
                next_fault = time.monotonic() + soak.rng.uniform(args.min_gap, args.max_gap)
            soak.step()
        except REDIS_ERRORS as exc:
            soak.say(f"(soak's own Redis call failed: {exc}; retrying)")
            time.sleep(0.2)
        time.sleep(TICK)
    if len(soak.expected) < args.jobs:
        soak.enqueue(args.jobs - len(soak.expected))
    last_fault = time.monotonic()
    soak.settle()
    soak.say("faults over; waiting for the queue to drain")
    outcome = drain(soak, args.drain)
    drained = time.monotonic() - last_fault
    while soak.watches and time.monotonic() - last_fault < args.drain:
        soak.step()
        time.sleep(TICK)
    return report(soak, outcome, drained)


def drain(soak: Soak, timeout: float) -> Outcome:
    chaos, ids = soak.chaos, list(soak.expected)
    deadline = time.monotonic() + timeout
    jobs: dict[str, Job] = {}
    while time.monotonic() < deadline:
        try:
            soak.step()
            jobs = load_jobs(chaos.client, ids)
        except REDIS_ERRORS:
            continue
        if len(jobs) == len(ids) and all(j.state.ended for j in jobs.values()):
            break
        time.sleep(0.5)
    report = doctor.run(chaos.client.store, fix=False)
    found = report.problems + ([f"{report.quarantined} in quarantine"]
                               if report.quarantined else [])
    return Outcome("soak", jobs, chaos.runs(), dict(soak.expected), found)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


HANDED_BACK = re.compile(r"job (\S+) of lost worker (\S+) handed back")


def handed_back(soak: Soak) -> set[str]:
    """Jobs a scheduler handed back from a worker that was killed or frozen (its log
    lines say which): besides the jobs it held when the fault came, a frozen worker may
    have leased one for each idle thread, by the fetch each sent behind its wait."""
    ids: set[str] = set()
    for proc in soak.chaos.procs.started:
        for job_id, worker in HANDED_BACK.findall(proc.stderr()):
            if worker in soak.faulted:
                ids.add(job_id)
    return ids


def report(soak: Soak, outcome: Outcome, drained: float) -> int:
    dup = outcome.duplicates
    unexplained = sorted(set(dup) - soak.suspects - handed_back(soak))
    lost = outcome.lost
    print()
    print(f"jobs          {dict(soak.kinds)}")
    print(f"faults        {dict(soak.faults)}")
    print(f"enqueued      {len(outcome.expected)}")
    print(f"completed     {len(outcome.ids_in(JobState.COMPLETED))}")
    dead = outcome.ids_in(JobState.DEAD)
    print(f"dead (DLQ)    {len(dead)}"
          + "".join(f"\n    {i}: {outcome.jobs[i].last_error}" for i in dead[:5]))
    print(f"LOST          {len(lost)} (not ended {len(outcome.not_ended)}, "
          f"ended without running {len(outcome.never_ran)})")
    for job_id in lost[:10]:
        job = outcome.jobs.get(job_id)
        where = f"{job.state.value} under {job.worker}" if job else "missing"
        print(f"    {job_id}: {where}, ran {outcome.runs[job_id]} time(s)")
    print(f"duplicated    {len(dup)} job(s) ran more than needed ({sum(dup.values())} extra "
          f"runs); {len(dup) - len(unexplained)} held by or handed back from a killed or "
          "frozen worker, "
          f"{len(unexplained)} unexplained {unexplained[:10]}")
    print(f"drained       {drained:.1f}s after the last fault")
    print("recovery      p50 / max (n)")
    for kind, what in RECOVERY.items():
        times = soak.recoveries.get(kind, [])
        if times:
            print(f"  {kind:18} {statistics.median(times):6.2f}s / {max(times):6.2f}s "
                  f"({len(times)})  {what}")
    for problem in soak.failures:
        print(f"PROBLEM       {problem}")
    crashed = [p.name for p in soak.chaos.procs.started if "Traceback" in p.stderr()]
    print(f"tracebacks    {crashed or 'none'} (process logs in {soak.chaos.procs.workdir})")
    print(f"doctor        {'; '.join(outcome.doctor[:10]) or 'clean'}")
    if lost:
        return 1
    if unexplained or soak.failures:
        return 2
    return 3 if outcome.doctor else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--min-gap", type=float, default=3.0, help="seconds between faults")
    parser.add_argument("--max-gap", type=float, default=8.0)
    parser.add_argument("--drain", type=float, default=180.0,
                        help="seconds to wait for the queue to drain at the end")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)  # noqa: S311 - a seed, not a secret
    print(f"soak seed {args.seed}")
    workdir = Path(tempfile.mkdtemp(prefix="queuectl-soak-"))
    sys.exit(run(args, workdir))


if __name__ == "__main__":
    main()
