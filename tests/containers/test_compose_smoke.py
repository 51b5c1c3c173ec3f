"""Smoke test of the compose stack (deploy/compose) with the images built from this tree.

Run by scripts/test-containers.sh after `docker compose up --wait`; everything goes through
the engine as a user would: `docker compose exec cli queuectl ...`, `docker stop`, and the
Prometheus inside the stack. The tests run in file order and share the stack; each prints
what it saw (`say`), and those lines are the stage's report.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "compose.yaml"
DOCKER = os.environ.get("QUEUECTL_DOCKER", "docker")
# A unique id part per run: the stack's Redis keeps its AOF between runs of a developer.
RUN = uuid.uuid4().hex[:6]
T = TypeVar("T")


def say(line: str) -> None:
    print(f"[smoke] {line}", flush=True)


def compose(*args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [DOCKER, "compose", "-f", str(COMPOSE_FILE), *args]
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}"
                             f"{done.stderr}")
    return done


def cli(*args: str, stdin: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``queuectl ARGS`` in the CLI container."""
    return compose("exec", "-T", "cli", "queuectl", *args, stdin=stdin, check=check,
                   timeout=timeout)


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def enqueue(jobs: list[dict[str, Any]]) -> list[str]:
    """Enqueue JSON jobs in one exec (`enqueue --file -`); their ids."""
    cli("enqueue", "--file", "-", stdin="".join(json.dumps(j) + "\n" for j in jobs))
    return [j["id"] for j in jobs]


def eventually(what: str, probe: Callable[[], T | None], deadline: float = 90) -> T:
    """Poll ``probe`` until it returns something other than None (generous deadline)."""
    end = time.monotonic() + deadline
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline:g}s: {what}")
        time.sleep(0.5)


def records(ids: list[str]) -> dict[str, dict[str, Any]]:
    """The job records of ``ids`` (one `list --json` call)."""
    wanted = set(ids)
    listed = cli_json("list", "--limit", "100000")
    return {r["id"]: r for r in listed if r["id"] in wanted}


def worker_containers() -> dict[str, str]:
    """Running worker replicas: container id -> name."""
    out = compose("ps", "--format", "json", "worker").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {r["ID"]: r["Name"] for r in rows if r.get("State") == "running"}


def container_of(worker_id: str, containers: dict[str, str]) -> str:
    """A worker id starts with its host name, which is the container's short id."""
    host = worker_id.split("-", 1)[0]
    matches = [cid for cid in containers if cid.startswith(host)]
    assert len(matches) == 1, f"worker {worker_id} is in none or several of {containers}"
    return matches[0]


def prometheus(query: str) -> list[dict[str, Any]]:
    """An instant query against the stack's Prometheus, from inside its container."""
    url = "http://localhost:9090/api/v1/query?" + urllib.parse.urlencode({"query": query})
    body = compose("exec", "-T", "prometheus", "wget", "-q", "-O", "-", url).stdout
    answer = json.loads(body)
    assert answer["status"] == "success", body
    return list(answer["data"]["result"])


def scalar(query: str) -> float | None:
    result = prometheus(query)
    return float(result[0]["value"][1]) if result else None


def without_zombies(container: str) -> list[list[str]] | None:
    """The processes of ``container`` (stat, pid, command), or None while one is a zombie."""
    ps = subprocess.run([DOCKER, "exec", container, "ps", "-eo", "stat=,pid=,comm="],
                        capture_output=True, text=True, check=True, timeout=30).stdout
    rows = [line.split() for line in ps.splitlines() if line.strip()]
    return None if any(r[0].startswith("Z") for r in rows) else rows


@pytest.fixture(scope="module", autouse=True)
def policy() -> None:
    """Small retries and backoff, so that a failing job reaches the DLQ in seconds."""
    for key, value in (("max-retries", "1"), ("backoff-base", "1"), ("backoff-factor", "1")):
        cli("config", "set", key, value)
    say("policy: max-retries 1, backoff-base 1s, backoff-factor 1 (queuectl config set)")


def test_the_cli_container_has_no_worker_or_scheduler() -> None:
    commands = cli("--help").stdout.split("Commands:")[1]
    assert "scheduler" not in commands and "enqueue" in commands
    refused = cli("worker", "start", check=False)
    assert refused.returncode == 2, refused
    scripts = compose("exec", "-T", "cli", "ls", "/opt/queuectl/bin").stdout.split()
    assert "queuectl" in scripts and "queuectl-worker" not in scripts
    assert "queuectl-scheduler" not in scripts
    say("CLI container: no 'scheduler' or 'worker start' command (exit 2), no "
        "queuectl-worker/queuectl-scheduler scripts")


def test_jobs_complete_on_both_workers_and_logs_are_read_from_the_cli() -> None:
    replicas = worker_containers()
    assert len(replicas) == 2, replicas
    jobs = [{"id": f"smoke-{RUN}-{i}", "command": f"sleep 0.3; echo output of job {i}"}
            for i in range(16)]
    ids = enqueue(jobs)
    cli("wait", *ids, "--timeout", "90")
    done = records(ids)
    assert {r["state"] for r in done.values()} == {"completed"}, done
    by_worker: dict[str, int] = {}
    for record in done.values():
        by_worker[record["worker"]] = by_worker.get(record["worker"], 0) + 1
    say(f"{len(ids)} jobs enqueued via 'docker compose exec cli queuectl enqueue', all "
        f"completed; per worker: {by_worker}")
    assert len(by_worker) == 2, f"not every replica ran a job: {by_worker}"
    assert {container_of(w, replicas) for w in by_worker} == set(replicas)

    log = cli("logs", ids[7]).stdout
    assert "output of job 7" in log, log
    say(f"queuectl logs {ids[7]}: {log.strip().splitlines()[-1]!r}")


def test_a_failing_job_retries_into_the_dlq() -> None:
    job = f"smoke-{RUN}-fails"
    enqueue([{"id": job, "command": "echo failing on purpose; exit 3"}])
    waited = cli("wait", job, "--timeout", "60", check=False)
    assert waited.returncode == 1, waited  # the job did not complete
    record = cli_json("show", job)
    assert record["state"] == "dead" and record["attempts"] == 2, record
    assert record["exit_code"] == 3
    dead = [r["id"] for r in cli_json("dlq", "list")]
    assert job in dead
    say(f"{job}: state dead after {record['attempts']} attempts (exit code 3), in "
        "'queuectl dlq list'")


def test_prometheus_scrapes_every_replica_and_sees_depth_and_completions() -> None:
    up = eventually("Prometheus scrapes both workers and the scheduler",
                    lambda: scalar('count(up{job=~"queuectl-.*"} == 1) == 3'))
    completed = eventually(
        "the completions reach Prometheus",
        lambda: scalar('sum(queuectl_jobs_finished_total{outcome="succeeded"}) >= 16'))
    dead = eventually("the dead job reaches the queue gauge",
                      lambda: scalar('sum(queuectl_queue_jobs{state="dead"}) >= 1'))
    pending = scalar('sum(queuectl_queue_jobs{state="pending"})')
    assert pending is not None
    rules = json.loads(compose("exec", "-T", "prometheus", "wget", "-q", "-O", "-",
                               "http://localhost:9090/api/v1/rules").stdout)
    groups = [g["name"] for g in rules["data"]["groups"]]
    assert "queuectl" in groups, groups
    say(f"Prometheus: {up:g} targets up (2 workers, 1 scheduler); "
        f"queuectl_jobs_finished_total{{outcome=succeeded}} = {completed:g}; "
        f"queuectl_queue_jobs{{state=dead}} = {dead:g}, {{state=pending}} = {pending:g}; "
        f"rule groups loaded: {groups}")


def test_no_zombie_is_left_in_a_worker_container() -> None:
    # Each job leaves children behind: one in the job's own process group, and one in a
    # new session without the worker's run token in its environment, which escapes the
    # worker's clean-up and lives on as an orphan until it exits by itself.
    command = ("(sleep 1 &); env -i setsid sleep 2 >/dev/null 2>&1 & echo spawned")
    ids = enqueue([{"id": f"smoke-{RUN}-orphan-{i}", "command": command} for i in range(6)])
    cli("wait", *ids, "--timeout", "60")
    workers = {r["worker"] for r in records(ids).values()}
    time.sleep(3)  # the escaped children end after 2 s
    for name in worker_containers().values():
        # A child that has just ended is a zombie until it is reaped, an instant later;
        # one that stays a zombie is the failure.
        rows = eventually(f"no zombie in {name}", partial(without_zombies, name), deadline=20)
        init = next(r[2] for r in rows if r[1] == "1")
        say(f"{name}: PID 1 is {init}, {len(rows)} processes, zombies: 0")
        assert init == "tini"
    say(f"{len(ids)} jobs that orphan children ran on {len(workers)} worker(s); no zombie")


def test_a_stopped_worker_hands_its_job_to_the_other_one_and_nothing_is_lost() -> None:
    before = cli_json("status")["states"]
    replicas = worker_containers()
    long_job = f"smoke-{RUN}-long"
    # Longer than the time to see it start and stop its worker plus the drain grace
    # (QUEUECTL_SHUTDOWN_GRACE=2 in the stage): it cannot end on the first worker.
    enqueue([{"id": long_job, "command": "sleep 12; echo long job done"}])

    def running_on() -> str | None:
        record = cli_json("show", long_job)
        return record["worker"] if record["state"] == "processing" else None

    first = eventually("the long job starts", running_on, deadline=60)
    victim = container_of(first, replicas)
    others = [f"smoke-{RUN}-during-{i}" for i in range(10)]
    enqueue([{"id": i, "command": "sleep 0.2"} for i in others])
    started = time.monotonic()
    subprocess.run([DOCKER, "stop", "-t", "60", victim], check=True, capture_output=True,
                   timeout=90)
    say(f"stopped worker container {replicas[victim]} (docker stop) while it ran "
        f"{long_job}; it exited after {time.monotonic() - started:.1f}s")

    cli("wait", long_job, *others, "--timeout", "120")
    record = cli_json("show", long_job)
    assert record["state"] == "completed", record
    assert record["worker"] != first and record["interrupted"] >= 1, record
    assert container_of(record["worker"], replicas) != victim
    assert "long job done" in cli("logs", long_job).stdout
    after = cli_json("status")["states"]
    assert after["completed"] == before["completed"] + 1 + len(others), (before, after)
    leftover = {k: v for k, v in after.items() if k not in ("completed", "dead") and v}
    assert leftover == {}, after
    say(f"{long_job} was handed back (interrupted {record['interrupted']}) and completed on "
        f"{record['worker']} (attempts {record['attempts']}); completed "
        f"{before['completed']} -> {after['completed']} (+{1 + len(others)}), nothing "
        "pending, running or lost")
