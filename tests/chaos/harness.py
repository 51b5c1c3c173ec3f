"""The chaos scenario runner, shared by tests/chaos and scripts/soak.py.

A scenario runs real ``queuectl-worker`` and ``queuectl-scheduler`` processes against a
Redis server of its own (AOF with ``appendfsync always``, so it can be shut down and
started again), enqueues jobs, injects faults with real signals, then checks the outcome.

The ground truth of what ran is not Redis but a file: every job appends its id to
``runs.txt`` when it runs (one short ``write`` with O_APPEND is atomic, so concurrent jobs
never interleave lines). Redis says how a job ended; the file says how often it really
ran. A job whose worker died after the append but before the result was written ran,
even though Redis will never show that run as finished.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis

from queuectl.core import doctor
from queuectl.core.client import Client
from queuectl.core.models import Job, JobSpec, JobState
from queuectl.core.settings import Settings
from queuectl.core.store import as_str
from tests.integration.procs import Proc, Procs, describe_jobs, eventually, load_jobs, read_lines
from tests.redis_server import LocalRedis

T = TypeVar("T")

# The server is the scenario's own, so the contract's default prefix is used: the keys
# read here (``queuectl:inflight:<worker>``) are the ones an operator would look at.
PREFIX = "queuectl"

# Short leases: a worker that stops beating is reaped WORKER_TTL after its last beat,
# noticed on the scheduler's next beat (HEARTBEAT_INTERVAL). Idle threads block for at
# most IDLE_WAIT, which bounds how long a missed wake-up marker can delay a requeued job.
FAST_ENV = {
    "QUEUECTL_HEARTBEAT_INTERVAL": "0.2",
    "QUEUECTL_WORKER_TTL": "1",
    "QUEUECTL_IDLE_WAIT": "1",
    "QUEUECTL_SHUTDOWN_GRACE": "1",
    "QUEUECTL_KILL_GRACE": "0.5",
    "QUEUECTL_SCHEDULER_INTERVAL": "0.5",
    # Several workers run at once: none binds the default metrics port.
    "QUEUECTL_METRICS_PORT": "0",
}

# How long Redis may still be running commands that a killed or frozen worker had already
# written to its socket; far below the 0.8 s before the scheduler can reap that worker.
SETTLE = 0.1


def tolerant(predicate: Callable[[], T]) -> Callable[[], T | None]:
    """``predicate``, reading "not yet" while Redis is unreachable (scenarios restart it)."""

    def call() -> T | None:
        try:
            return predicate()
        except (redis.ConnectionError, redis.TimeoutError):
            return None  # BusyLoadingError (replaying the AOF) is a ConnectionError too

    call.__name__ = getattr(predicate, "__name__", "predicate")
    return call


def through_outages(predicate: Callable[[], T | None], timeout: float, *, what: str,
                    describe: Callable[[], str] | None = None) -> T:
    """``eventually(predicate)``, reading a Redis outage as "not yet"."""
    value = eventually(tolerant(predicate), timeout, what=what, interval=0.1,
                       describe=describe)
    assert value is not None  # eventually() returns only a truthy value
    return value


def process_state(pid: int) -> str:
    """The one-letter state of ``pid`` in /proc ("T" = stopped); "" once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[0]


def is_stopped(pid: int) -> bool:
    return process_state(pid) == "T"


@dataclass(frozen=True, slots=True)
class Worker:
    id: str
    proc: Proc


@dataclass(frozen=True, slots=True)
class Lost:
    """A worker taken out by a fault, and the jobs it held when it was."""

    worker: str
    at: float  # Redis server time just before the signal
    held: frozenset[str]  # its in-flight set once it could no longer change it
    seen_before: frozenset[str]  # the same set read just before the signal


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a scenario ended: the records, the real run counts, and what was expected."""

    name: str
    jobs: dict[str, Job]
    runs: Counter[str]
    expected: dict[str, int]
    doctor: list[str] = field(default_factory=list)  # what `queuectl doctor` found

    def ids_in(self, state: JobState) -> list[str]:
        return sorted(i for i, j in self.jobs.items() if j.state is state)

    @property
    def not_ended(self) -> list[str]:
        return sorted(i for i in self.expected if i not in self.jobs
                      or not self.jobs[i].state.ended)

    @property
    def never_ran(self) -> list[str]:
        """Jobs that had to run (expected > 0) and did not; a job expected 0 times is one
        a fault may have buried before it ever started."""
        return sorted(i for i, n in self.expected.items() if n and self.runs[i] == 0)

    @property
    def lost(self) -> list[str]:
        """Jobs that did not end, or ended without ever running: what must never happen."""
        return sorted(set(self.not_ended) | set(self.never_ran))

    @property
    def ran_too_few(self) -> dict[str, int]:
        return {i: self.runs[i] for i, n in self.expected.items() if self.runs[i] < n}

    @property
    def duplicates(self) -> dict[str, int]:
        """Extra runs per job, beyond what it was expected to need."""
        return {i: self.runs[i] - n for i, n in self.expected.items() if self.runs[i] > n}

    @property
    def strangers(self) -> list[str]:
        return sorted(set(self.runs) - set(self.expected))

    def summary(self) -> str:
        dup = self.duplicates
        return (
            f"[chaos {self.name}] enqueued {len(self.expected)}, "
            f"completed {len(self.ids_in(JobState.COMPLETED))}, "
            f"dead {len(self.ids_in(JobState.DEAD))}, lost {len(self.lost)}, "
            f"ran more than expected {len(dup)} (extra runs {sum(dup.values())}"
            f"{': ' + ', '.join(sorted(dup)[:8]) if dup else ''})"
        )

    def assert_nothing_lost(self) -> None:
        """Every job ended and ran at least as often as it had to; nothing unknown ran."""
        assert not self.not_ended, f"jobs that never ended: {self.not_ended[:10]}"
        assert not self.never_ran, f"jobs that ended but never ran: {self.never_ran[:10]}"
        assert not self.ran_too_few, f"jobs that ran too few times: {self.ran_too_few}"
        assert not self.strangers, f"runs of unknown ids: {self.strangers[:10]}"
        assert not self.doctor, f"doctor found: {self.doctor[:10]}"


class Chaos:
    """One scenario: its Redis, its processes, its files, and a client to look at it all."""

    def __init__(self, server: LocalRedis, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.runs_file = workdir / "runs.txt"
        self.marks = workdir / "marks"
        self.marks.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        self.env = {
            **base,
            "QUEUECTL_REDIS_URL": server.url,
            "QUEUECTL_KEY_PREFIX": PREFIX,
            "QUEUECTL_DATA_DIR": str(workdir / "data"),
            "QUEUECTL_LOG_DIR": str(workdir / "logs"),
            **FAST_ENV,
        }
        self.procs = Procs(self.env, workdir / "procs")
        self.client = Client.connect(Settings(redis_url=server.url, key_prefix=PREFIX))
        self.keys = self.client.keys
        self._workers = 0

    def close(self) -> None:
        self.procs.cleanup()
        self.client.redis.close()

    # -- commands ---------------------------------------------------------------------------
    def record(self, then: str = "sleep 0.05") -> str:
        """A job that appends its id to runs.txt, then runs ``then``."""
        runs = shlex.quote(str(self.runs_file))
        return f'echo "$QUEUECTL_JOB_ID" >> {runs}; {then}'

    def record_at_end(self, before: str) -> str:
        """A job that runs ``before`` and only then appends its id (a run that got to the end)."""
        runs = shlex.quote(str(self.runs_file))
        return f'{before}; echo "$QUEUECTL_JOB_ID" >> {runs}'

    def fail_once(self) -> str:
        """A job that fails its first run and succeeds on the next (a marker file remembers)."""
        mark = f'{shlex.quote(str(self.marks))}/"$QUEUECTL_JOB_ID"'
        return self.record(f"sleep 0.05; test -e {mark} && exit 0; touch {mark}; exit 1")

    @staticmethod
    def spec(job_id: str, command: str, *, max_retries: int | None = None,
             delay: float | None = None) -> JobSpec:
        run_at = None if delay is None else datetime.now(UTC) + timedelta(seconds=delay)
        return JobSpec(id=job_id, command=command, max_retries=max_retries, run_at=run_at)

    def enqueue(self, specs: Iterable[JobSpec]) -> list[str]:
        results = self.client.enqueue_many(specs)
        errors = [r.error for r in results if r.error]
        assert not errors, errors[:3]
        return [r.id for r in results]

    def config(self, **values: str) -> None:
        """Set runtime policy keys (``max_lost="2"`` sets ``max-lost``)."""
        for name, value in values.items():
            self.client.config_set(name.replace("_", "-"), value)

    # -- processes --------------------------------------------------------------------------
    def start_worker(self, concurrency: int = 3, env: Mapping[str, str] | None = None, *,
                     wait: bool = True) -> Worker:
        """Start a worker with a known id (``w<n>``); by default wait until it beats."""
        worker_id = f"w{self._workers}"
        self._workers += 1
        proc = self.procs.worker({"QUEUECTL_WORKER_ID": worker_id,
                                  "QUEUECTL_CONCURRENCY": str(concurrency), **(env or {})})
        worker = Worker(worker_id, proc)
        if wait:
            self.wait_beating(worker)
        return worker

    def wait_beating(self, worker: Worker) -> None:
        def beating() -> bool:
            assert worker.proc.alive(), f"{worker.id} exited:\n{worker.proc.stderr()[-2000:]}"
            return bool(self.client.redis.exists(self.keys.worker(worker.id)))

        eventually(tolerant(beating), 30, what=f"worker {worker.id} beats")

    def start_scheduler(self, env: Mapping[str, str] | None = None, *,
                        wait: bool = True) -> Proc:
        proc = self.procs.scheduler(env)
        if wait:
            key = self.keys.scheduler(self.scheduler_id(proc))
            eventually(tolerant(lambda: self.client.redis.exists(key)), 30,
                       what=f"scheduler {proc.name} beats")
        return proc

    @staticmethod
    def scheduler_id(proc: Proc) -> str:
        """The id a scheduler gives itself (queuectl.scheduler.loop.default_scheduler_id)."""
        return f"{socket.gethostname()}-{proc.pid}"

    def promoted(self, schedulers: Sequence[Proc]) -> dict[str, int]:
        """What each scheduler says it promoted (its status hash, refreshed on every beat)."""
        out = {}
        for proc in schedulers:
            raw = self.client.redis.hget(self.keys.scheduler(self.scheduler_id(proc)),
                                         "promoted")
            out[proc.name] = int(as_str(raw)) if raw is not None else -1
        return out

    # -- looking ------------------------------------------------------------------------------
    def server_time(self) -> float:
        secs, micros = self.client.redis.time()
        return float(secs) + micros / 1e6

    def held(self, worker_id: str) -> frozenset[str]:
        """The worker's in-flight set ``queuectl:inflight:<worker>``."""
        return frozenset(as_str(m) for m in
                         self.client.redis.smembers(self.keys.inflight(worker_id)))

    def wait_holding(self, worker: Worker, at_least: int = 1, timeout: float = 30.0) -> None:
        eventually(lambda: len(self.held(worker.id)) >= at_least, timeout,
                   what=f"{worker.id} holds {at_least} job(s)")

    def completed_count(self) -> int:
        return int(self.client.redis.zcard(self.keys.completed))

    def runs(self) -> Counter[str]:
        return Counter(read_lines(self.runs_file))

    # -- faults -------------------------------------------------------------------------------
    def take_out(self, workers: Sequence[Worker],
                 sig: signal.Signals = signal.SIGKILL) -> list[Lost]:
        """SIGKILL (or SIGSTOP) workers all at once; return the jobs each held at that moment."""
        before = {w.id: self.held(w.id) for w in workers}
        at = self.server_time()
        for worker in workers:
            worker.proc.signal(sig)
        for worker in workers:
            if sig is signal.SIGKILL:
                worker.proc.wait_exit(10)
            else:
                eventually(partial(is_stopped, worker.proc.pid), 10,
                           what=f"{worker.id} stopped")
        # The set read before the signal may be off by a job fetched or finished in
        # between. Once a worker can no longer act, its set cannot change until the
        # scheduler reaps it (at least WORKER_TTL - HEARTBEAT_INTERVAL = 0.8 s after its
        # last beat), so a read now is exact. SETTLE lets Redis run what the worker had
        # already written to its socket before the signal.
        time.sleep(SETTLE)
        lost = [Lost(w.id, at, self.held(w.id), before[w.id]) for w in workers]
        for gone in lost:
            print(f"{sig.name} {gone.worker}: held {len(gone.held)} job(s) "
                  f"({len(gone.seen_before)} just before the signal)")
        return lost

    def resumed(self, lost: Sequence[Lost]) -> float | None:
        """Seconds (Redis clock) from the fault until every job the lost workers held was
        started again by another worker, or buried in the DLQ; None while one was not."""
        latest = 0.0
        for gone in lost:
            jobs = load_jobs(self.client, sorted(gone.held))
            for job_id in gone.held:
                job = jobs.get(job_id)
                if job is None:
                    return None
                if job.state is JobState.DEAD and job.worker == gone.worker:
                    latest = max(latest, job.updated_at - gone.at)
                elif (job.worker != gone.worker and job.started_at is not None
                      and job.started_at >= gone.at):
                    latest = max(latest, job.started_at - gone.at)
                elif job.state.ended and job.worker == gone.worker:
                    continue  # its own last write landed after the signal: nothing to redo
                else:
                    return None
        return latest

    def recovery(self, lost: Sequence[Lost], timeout: float = 30.0) -> float:
        """Wait until ``resumed``; print and return the seconds it took."""
        held = sum(len(g.held) for g in lost)
        names = ", ".join(g.worker for g in lost)
        # A tuple, because eventually() waits for a truthy value and 0.0 is not one.
        (took,) = through_outages(
            lambda: (t,) if (t := self.resumed(lost)) is not None else None,
            timeout, what=f"{held} job(s) of {names} run again")
        print(f"recovery: {held} held job(s) of {names} running again {took:.2f}s "
              "after the fault")
        return took

    # -- the end ------------------------------------------------------------------------------
    def finish(self, name: str, expected: Mapping[str, int], timeout: float = 60.0) -> Outcome:
        """Wait until every job ended; return (and print) the outcome against ``expected``
        (id -> number of runs the job needs, e.g. 2 for a job that fails once)."""
        ids = list(expected)

        def ended() -> dict[str, Job]:
            jobs = load_jobs(self.client, ids)
            if len(jobs) == len(ids) and all(j.state.ended for j in jobs.values()):
                return jobs
            return {}

        jobs = through_outages(ended, timeout, what=f"{len(ids)} job(s) ended",
                               describe=lambda: describe_jobs(self.client, ids))
        report = through_outages(lambda: (doctor.run(self.client.store, fix=False),), timeout,
                                 what="doctor ran")[0]
        outcome = Outcome(name, jobs, self.runs(), dict(expected),
                          report.problems + ([f"{report.quarantined} in quarantine"]
                                             if report.quarantined else []))
        print(outcome.summary(), f"doctor: {'; '.join(outcome.doctor) or 'clean'}")
        return outcome
