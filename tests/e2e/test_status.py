"""``queuectl status`` once, as JSON, and ``--watch`` until Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal

from queuectl.core.client import Client

from .helpers import Cli, assert_ok, background, finish, make_dead, register_worker
from .schemas import check, json_of

NO_TOTALS = {"runs_completed": 0, "runs_failed": 0, "retries": 0, "buried": 0, "runs_lost": 0}


def _fill(client: Client) -> None:
    make_dead(client, "dead1")
    for i in range(3):
        client.enqueue("true", job_id=f"p{i}")
    client.enqueue("true", job_id="m1", queue="mail")
    client.enqueue("true", job_id="later", delay=3600)
    finish(client, "p0")
    register_worker(client, "w1", queues="mail,default", threads=2)
    client.store.fetch("w1", ["mail"])
    k = client.keys
    client.store.heartbeat(k.scheduler("s1"), k.schedulers, "s1", 30.0, "t", {"id": "s1"})


def test_status_of_an_empty_queue(cli: Cli) -> None:
    out = assert_ok(cli("status"))
    assert "no workers" in out and "no schedulers" in out
    data = json_of(cli("status", "--json"), "status")
    assert set(data["states"].values()) == {0}
    assert data["queues"] == [
        {"name": "default", "pending": 0, "scheduled": 0, "failed": 0, "dead": 0,
         "completed": 0, "cancelled": 0, "processing": 0, "retries_due": 0,
         "oldest_ready_age": 0, "totals": NO_TOTALS}]
    assert data["totals"] == NO_TOTALS
    assert data["workers"] == [] and data["schedulers"] == []


def test_status_counts_queues_workers_and_schedulers(cli: Cli, client: Client) -> None:
    _fill(client)
    data = json_of(cli("status", "--json"), "status")
    assert data["states"] == {"pending": 2, "scheduled": 1, "processing": 1, "failed": 0,
                              "dead": 1, "completed": 1, "cancelled": 0, "quarantined": 0}
    queues = {q["name"]: q for q in data["queues"]}
    # Jobs in each state now (from the queue's list and indexes), and running totals under
    # names no state has: "failed" 0 (no job waits for a retry) beside runs_failed 1.
    totals = NO_TOTALS | {"runs_completed": 1, "runs_failed": 1, "buried": 1}
    oldest = queues["default"].pop("oldest_ready_age")
    assert queues["default"] == {"name": "default", "pending": 2, "scheduled": 1, "failed": 0,
                                 "dead": 1, "completed": 1, "cancelled": 0, "processing": 0,
                                 "retries_due": 0, "totals": totals}
    assert 0 < oldest < 60  # p1 and p2 wait since their enqueue a moment ago
    assert queues["mail"]["pending"] == 0 and queues["mail"]["totals"] == NO_TOTALS
    # m1 is held by w1: processing counts it under its own queue.
    assert (queues["mail"]["processing"], queues["mail"]["oldest_ready_age"]) == (1, 0)
    assert data["totals"] == totals
    [worker] = data["workers"]
    assert (worker["id"], worker["alive"], worker["threads"], worker["queues"],
            worker["jobs"], worker["state"]) == ("w1", True, 2, ["mail", "default"], ["m1"],
                                                 "running")
    assert worker["last_beat"].endswith("Z") and worker["last_beat_age"] >= 0
    assert [s["id"] for s in data["schedulers"]] == ["s1"]

    out = assert_ok(cli("status"))
    tables = [block.splitlines() for block in out.split("\n\n")]
    states = dict(line.split() for line in tables[0][1:])
    assert states == {name: str(n) for name, n in data["states"].items()}
    assert tables[1][0].split() == ["QUEUE", "PENDING", "OLDEST", "PROCESSING", "SCHEDULED",
                                    "FAILED", "DEAD", "COMPLETED", "CANCELLED"]
    name, pending, oldest_text, *rest = tables[1][1].split()
    assert (name, pending, rest) == ("default", "2", ["0", "1", "0", "1", "1", "0"])
    assert oldest_text.endswith("s")
    assert tables[1][2].split() == ["mail", "0", "-", "1", "0", "0", "0", "0", "0"]
    assert tables[2] == ["totals: runs_completed 1, runs_failed 1, retries 0, buried 1, "
                         "runs_lost 0"]
    assert tables[3][0].split()[:5] == ["WORKER", "ALIVE", "THREADS", "QUEUES", "JOBS"]
    assert tables[3][1].split()[:5] == ["w1", "yes", "2", "mail,default", "m1"]
    assert tables[4][1].split()[0] == "s1"


def test_worker_json_is_typed_whatever_its_status_hash_holds(cli: Cli, client: Client) -> None:
    register_worker(client, "w1")
    client.redis.hset(client.keys.worker("w1"), mapping={
        "pid": "1234", "processed": "7", "failed": "2", "slots_alive": "4",
        "environment_failures": "0", "started_at": "2026-01-02T03:04:05.678Z", "host": "h"})
    register_worker(client, "w2")
    client.redis.hset(client.keys.worker("w2"), mapping={
        "pid": "abc", "threads": "-1", "state": "\x1b[2Jhacked", "started_at": "yesterday",
        "failed": "\u00b2"})  # a digit to str.isdigit, not to int()
    workers = json_of(cli("worker", "list", "--json"), "worker-list")
    # Numbers are numbers, the counters named for what they count; no raw string hash.
    assert workers[0] == {
        "id": "w1", "alive": True, "last_beat": workers[0]["last_beat"],
        "last_beat_age": workers[0]["last_beat_age"], "host": "h", "pid": 1234,
        "started_at": "2026-01-02T03:04:05.678Z", "state": "running", "threads": 4,
        "slots_alive": 4, "queues": ["default"], "jobs": [], "runs_finished": 7,
        "runs_failed": 2, "environment_failures": 0}
    # What is not a worker's own value is null, not passed through.
    assert (workers[1]["pid"], workers[1]["threads"], workers[1]["state"],
            workers[1]["started_at"], workers[1]["runs_failed"]) == (None, None, None, None, None)
    in_status = json_of(cli("status", "--json"), "status")["workers"]
    assert [w | {"last_beat_age": 0} for w in in_status] == [
        w | {"last_beat_age": 0} for w in workers]


def test_watch_refreshes_until_ctrl_c(env: dict[str, str], client: Client) -> None:
    client.enqueue("true", job_id="j1")
    with background(env, "status", "--watch", "--interval", "0.1") as proc:
        assert proc.stdout is not None
        seen = b""
        while seen.count(b"queuectl status at") < 3:
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, "status --watch exited early"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err  # Ctrl-C, as for every command
    assert err == b""
    frame = (seen + out).split(b"queuectl status at")[1]
    assert re.search(rb"^pending +1$", frame, re.MULTILINE)


def test_watch_json_prints_one_line_per_refresh(env: dict[str, str], client: Client) -> None:
    client.enqueue("true", job_id="j1")
    with background(env, "status", "--watch", "--interval", "0.1", "--json") as proc:
        assert proc.stdout is not None
        first = check(json.loads(proc.stdout.readline()), "status")
        second = check(json.loads(proc.stdout.readline()), "status")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err == b""
    assert first["states"]["pending"] == second["states"]["pending"] == 1


def test_overdue_work_without_a_scheduler_is_said_in_words(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="late", delay=0.001)
    client.redis.zadd(client.keys.delayed, {"late": 1})  # due long ago; no scheduler runs
    st = json.loads(assert_ok(cli("status", "--json")))
    [hint] = [p for p in st["problems"] if "overdue" in p]
    assert "no scheduler is running: start one (queuectl scheduler)" in hint
    assert "start one (queuectl scheduler)" in assert_ok(cli("status"))
    result = cli("wait", "late", "--timeout", "0.2")
    assert result.code == 7
    assert "no scheduler is running" in result.err


def test_pending_work_no_running_worker_takes_is_said_in_words(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="p1")
    st = json_of(cli("status", "--json"), "status")
    assert st["problems"] == [
        "1 pending job and no worker is running: start one (queuectl worker start)"]
    result = cli("wait", "p1", "--timeout", "0.2")
    assert result.code == 7
    assert "e.g. p1; 1 pending job and no worker is running" in result.err
    # A worker that takes other queues only, or is stopping, takes none of it.
    register_worker(client, "w-high", queues="high,low")
    client.enqueue("true", job_id="p2", queue="urgent")
    hint = ("2 pending jobs in queue(s) no running worker takes (default, urgent): start one "
            "for them (queuectl worker start --queues default,urgent)")
    assert json_of(cli("status", "--json"), "status")["problems"] == [hint]
    assert hint in assert_ok(cli("status"))
    register_worker(client, "w-default", queues="default")
    client.redis.hset(client.keys.worker("w-default"), "state", "stopping")
    assert json_of(cli("status", "--json"), "status")["problems"] == [hint]
    # With a running worker for each, nothing to say; a wait names only its own jobs' queues.
    register_worker(client, "w-default", queues="default")
    result = cli("wait", "p1", "--timeout", "0.2")
    assert result.code == 7 and "worker" not in result.err
    assert "(urgent)" in cli("wait", "p2", "--timeout", "0.2").err
    register_worker(client, "w-urgent", queues="urgent")
    assert json_of(cli("status", "--json"), "status")["problems"] == []
