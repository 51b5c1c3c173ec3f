"""The systems under test behind one interface: QueueCTL (its real worker processes and
Client, from this venv) and each peer (its driver and worker, from the peer's own venv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from benchmarks.harness.infra import PEERS, BenchError, Workers, venv_python, wait_until

CONCURRENCY = 8


@dataclass
class Batch:
    """Jobs enqueued together: how to tell they are done and where their results are."""

    seconds: float
    n: int
    began: float  # time.time() as the first enqueue call began
    keys: list[str] = field(default_factory=list)  # peers: result keys
    handles: Path | None = None  # peers: the driver's handles file
    ids: list[str] = field(default_factory=list)  # QueueCTL: job ids
    base: int = 0  # QueueCTL: completed jobs before this batch


@dataclass
class Timings:
    starts: list[float]
    finishes: list[float]
    exit_codes: dict[str, int]
    missing: int
    start_field: str = "spawned_at"

    def rate(self) -> float:
        """Jobs per second from the first start to the last finish."""
        if self.missing or not self.starts:
            raise BenchError(f"{self.missing} results missing")
        bad = sum(c for code, c in self.exit_codes.items() if code != "0")
        if bad:
            raise BenchError(f"{bad} jobs did not exit 0: {self.exit_codes}")
        return len(self.starts) / (max(self.finishes) - min(self.starts))

    def steady(self) -> tuple[float, float, int]:
        """The drain's steady middle: from the finish of the job at 20 % to that of the job
        at 90 %, and how many finished within it. Worker start-up (a second process still
        importing while the first runs jobs) and the last stragglers are left out."""
        ends = sorted(self.finishes)
        first, last = len(ends) // 5, len(ends) * 9 // 10
        if last - first < 10:
            raise BenchError(f"too few jobs ({len(ends)}) for a steady window")
        return ends[first], ends[last], last - first

    def rate_since(self, began: float) -> float:
        """Jobs per second from ``began`` (the first enqueue) to the last finish: what a
        slow pickup costs counts too."""
        self.rate()  # the same checks
        return len(self.finishes) / (max(self.finishes) - began)


class System:
    """One system at one processes x threads model."""

    name = ""
    label = ""
    family = ""
    processes = 1
    threads = CONCURRENCY

    def __init__(self, url: str, workdir: Path) -> None:
        self.url, self.workdir = url, workdir
        self.redis = redis.Redis.from_url(url)
        self.own: Counter[str] = Counter()  # the harness's polling, taken out of the cost

    @property
    def model(self) -> str:
        return f"{self.processes}x{self.threads}"

    def prepare(self) -> None:
        """Install what the system needs (a peer's venv); called once per run."""

    def enqueue(self, n: int, mode: str, command: str = "true") -> Batch:
        raise NotImplementedError

    def done(self, batch: Batch) -> int:
        raise NotImplementedError

    def collect(self, batch: Batch) -> Timings:
        raise NotImplementedError

    def start_workers(self) -> Workers:
        raise NotImplementedError

    def latency(self, samples: int) -> tuple[list[float], str]:
        raise NotImplementedError

    def extra_bulk(self, n: int) -> dict[str, float]:
        """Further bulk-enqueue forms (QueueCTL: the CLI's --file), jobs/s each."""
        return {}

    def cleanup(self) -> None:
        """Remove what the system left on disk."""

    def wait_done(self, batch: Batch, timeout: float, workers: Workers) -> None:
        def check() -> bool:
            workers.check_alive()
            return self.done(batch) >= batch.n
        wait_until(check, timeout, f"{batch.n} jobs to finish", interval=0.05)


class PeerSystem(System):
    """A peer: driver actions run with the peer venv's python, workers with its tools."""

    module = ""
    peer = ""

    def prepare(self) -> None:
        self.python = venv_python(self.peer)
        self.bin = self.python.parent

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "BENCH_REDIS_URL": self.url, "PYTHONPATH": str(PEERS), **extra}

    def driver(self, action: str, *args: str, timeout: float = 300) -> dict[str, Any]:
        argv = [str(self.python), str(PEERS / f"{self.module}.py"), action, "--url", self.url,
                *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                                  cwd=PEERS, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchError(f"{self.module} {action} took more than {timeout:.0f}s") from exc
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise BenchError(f"{self.module} {action} exited {done.returncode}: {last[:200]}")
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

    def enqueue(self, n: int, mode: str, command: str = "true") -> Batch:
        fd, name = tempfile.mkstemp(suffix=".jsonl", dir=self.workdir)
        os.close(fd)
        doc = self.driver("enqueue", "--n", str(n), "--mode", mode, "--command", command,
                          "--handles", name)
        path = Path(name)
        keys = [json.loads(line)["key"] for line in path.read_text().splitlines() if line]
        if len(keys) != n:
            raise BenchError(f"{len(keys)} of {n} jobs enqueued")
        return Batch(seconds=float(doc["seconds"]), n=n, began=float(doc["began"]), keys=keys,
                     handles=path)

    def done(self, batch: Batch) -> int:
        count = 0
        for start in range(0, len(batch.keys), 1000):
            count += int(self.redis.exists(*batch.keys[start:start + 1000]))
            self.own["exists"] += 1
        return count

    def collect(self, batch: Batch) -> Timings:
        assert batch.handles is not None
        doc = self.driver("collect", "--handles", str(batch.handles))
        return Timings(doc["spawned"], doc["finished"], doc["exit_codes"], doc["missing"])

    def latency(self, samples: int) -> tuple[list[float], str]:
        doc = self.driver("latency", "--samples", str(samples), timeout=120)
        return [float(x) for x in doc["latencies_ms"]], "spawned_at"

    def spawn(self, argvs: list[list[str]], **env: str) -> Workers:
        return Workers(argvs, self.env(**env), PEERS, self.workdir / f"{self.name}.log")


class RqSystem(PeerSystem):
    module, peer, family, threads, processes = "rq_peer", "rq", "RQ", 1, CONCURRENCY

    def __init__(self, url: str, workdir: Path, variant: str) -> None:
        super().__init__(url, workdir)
        self.variant = variant
        self.name = f"rq-{variant}"
        self.label = f"RQ {'SimpleWorker' if variant == 'simple' else 'Worker (fork per job)'}"

    def start_workers(self) -> Workers:
        argv = [str(self.python), str(PEERS / "rq_peer.py"), "worker", "--url", self.url,
                "--variant", self.variant]
        return self.spawn([argv] * self.processes)


class DramatiqSystem(PeerSystem):
    module, peer, family, processes, threads = "dramatiq_peer", "dramatiq", "Dramatiq", 2, 4
    name, label = "dramatiq-2x4", "Dramatiq"

    def start_workers(self) -> Workers:
        return self.spawn([[str(self.bin / "dramatiq"), "dramatiq_peer", "--processes",
                            str(self.processes), "--threads", str(self.threads)]])


class CelerySystem(PeerSystem):
    module, peer, family = "celery_peer", "celery", "Celery"

    def __init__(self, url: str, workdir: Path, pool: str) -> None:
        super().__init__(url, workdir)
        self.pool = pool
        self.name, self.label = f"celery-{pool}", f"Celery {pool}"
        self.processes, self.threads = (CONCURRENCY, 1) if pool == "prefork" else (1, CONCURRENCY)

    def start_workers(self) -> Workers:
        return self.spawn([[str(self.bin / "celery"), "-A", "celery_peer", "worker", "--pool",
                            self.pool, "--concurrency", str(CONCURRENCY), "--loglevel",
                            "WARNING"]])


class ArqSystem(PeerSystem):
    module, peer, family, label = "arq_peer", "arq", "arq", "arq (asyncio)"

    def __init__(self, url: str, workdir: Path, processes: int) -> None:
        super().__init__(url, workdir)
        self.processes, self.threads = processes, CONCURRENCY // processes
        self.name = f"arq-{self.model}"

    def start_workers(self) -> Workers:
        argv = [str(self.bin / "arq"), "arq_peer.WorkerSettings"]
        return self.spawn([argv] * self.processes, BENCH_MAX_JOBS=str(self.threads))


class QueueCtlSystem(System):
    """QueueCTL at this worktree: ``queuectl-worker`` processes, the Client, the CLI."""

    family, label = "QueueCTL", "QueueCTL"

    def __init__(self, url: str, workdir: Path, processes: int, cgroups: bool = True) -> None:
        super().__init__(url, workdir)
        self.processes, self.threads = processes, CONCURRENCY // processes
        self.name = f"queuectl-{self.model}" + ("" if cgroups else "-nocg")
        if not cgroups:
            # The peers contain a job by its process group at most: this variant shows
            # what QueueCTL's per-run cgroup (where the host allows one) costs.
            self.label = "QueueCTL, job cgroups off"
        self.bin = Path(sys.executable).parent
        self.envs = {"QUEUECTL_REDIS_URL": url, "QUEUECTL_KEY_PREFIX": "queuectl",
                     "QUEUECTL_LOG_DIR": str(workdir / f"{self.name}-logs"),
                     "QUEUECTL_METRICS_PORT": "0", "QUEUECTL_LOG_LEVEL": "WARNING",
                     "QUEUECTL_JOB_CGROUP": "auto" if cgroups else "off"}
        os.environ.update(self.envs)
        from queuectl.core.client import Client
        from queuectl.core.settings import Settings

        self.client = Client.connect(Settings())

    def enqueue(self, n: int, mode: str, command: str = "true") -> Batch:
        from queuectl.core.models import JobSpec

        base = self._completed()
        began, t0 = time.time(), time.perf_counter()
        if mode == "one":
            ids = [self.client.enqueue(command).id for _ in range(n)]
        else:
            ids = [r.id for r in self.client.enqueue_many(JobSpec(command=command)
                                                          for _ in range(n))]
        return Batch(seconds=time.perf_counter() - t0, n=n, began=began, ids=ids, base=base)

    def _completed(self) -> int:
        self.own["zcard"] += 1
        return int(self.redis.zcard(self.client.keys.completed))

    def done(self, batch: Batch) -> int:
        return self._completed() - batch.base

    def collect(self, batch: Batch) -> Timings:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in batch.ids:
            pipe.hmget(self.client.keys.job(job_id), "spawned_at", "started_at", "finished_at",
                       "exit_code")
        starts, finishes, codes, missing, fields = [], [], Counter[str](), 0, set()
        for spawned, started, finished, code in pipe.execute():
            if finished is None:
                missing += 1
                continue
            fields.add("spawned_at" if spawned is not None else "started_at")
            starts.append(float(spawned if spawned is not None else started))
            finishes.append(float(finished))
            codes[code.decode() if code is not None else "None"] += 1
        return Timings(starts, finishes, dict(codes), missing, "/".join(sorted(fields)))

    def start_workers(self) -> Workers:
        env = {**self.envs_for_services(), "QUEUECTL_CONCURRENCY": str(self.threads)}
        argv = [str(self.bin / "queuectl-worker")]
        return Workers([argv] * self.processes, env, self.workdir,
                       self.workdir / f"{self.name}.log")

    def latency(self, samples: int) -> tuple[list[float], str]:
        out, fields = [], set()
        deadline = time.monotonic() + 6  # as the peers' LATENCY_BUDGET
        for _ in range(samples):
            if time.monotonic() > deadline:
                break
            t0 = time.time()
            job_id = self.client.enqueue("true").id
            self.client.wait([job_id], timeout=30, poll=0.001)
            spawned, started = self.redis.hmget(self.client.keys.job(job_id), "spawned_at",
                                                "started_at")
            fields.add("spawned_at" if spawned is not None else "started_at")
            start = spawned if spawned is not None else started
            if start is None:
                raise BenchError(f"job {job_id} has no start time")
            out.append((float(start) - t0) * 1000)
            time.sleep(0.01)
        return out, "/".join(sorted(fields))

    def extra_bulk(self, n: int) -> dict[str, float]:
        """``queuectl enqueue --file`` of ``n`` lines, wall clock with the CLI's start-up
        (measured with the 1x8 system only: the worker model does not change it)."""
        if self.processes != 1:
            return {}
        path = self.workdir / "jobs.jsonl"
        path.write_text('{"command":"true"}\n' * n)
        t0 = time.perf_counter()
        done = subprocess.run([str(self.bin / "queuectl"), "enqueue", "--file", str(path)],
                              capture_output=True, text=True, timeout=300, check=False)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise BenchError(f"queuectl enqueue --file exited {done.returncode}: "
                             f"{done.stderr.strip()[:200]}")
        return {"cli_file": n / seconds}

    def envs_for_services(self) -> dict[str, str]:
        return {**os.environ, **self.envs}

    def cleanup(self) -> None:
        shutil.rmtree(self.envs["QUEUECTL_LOG_DIR"], ignore_errors=True)


SYSTEMS: dict[str, Callable[[str, Path], System]] = {
    "queuectl-1x8": lambda url, wd: QueueCtlSystem(url, wd, 1),
    "queuectl-2x4": lambda url, wd: QueueCtlSystem(url, wd, 2),
    "queuectl-2x4-nocg": lambda url, wd: QueueCtlSystem(url, wd, 2, cgroups=False),
    "rq-simple": lambda url, wd: RqSystem(url, wd, "simple"),
    "rq-fork": lambda url, wd: RqSystem(url, wd, "fork"),
    "dramatiq-2x4": DramatiqSystem,
    "celery-prefork": lambda url, wd: CelerySystem(url, wd, "prefork"),
    "celery-threads": lambda url, wd: CelerySystem(url, wd, "threads"),
    "arq-1x8": lambda url, wd: ArqSystem(url, wd, 1),
    "arq-2x4": lambda url, wd: ArqSystem(url, wd, 2),
}
