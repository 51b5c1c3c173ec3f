"""``dlq``, ``config``, ``worker`` and ``scheduler``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState

from .helpers import (
    QUEUECTL,
    Cli,
    assert_error,
    assert_ok,
    background,
    finish,
    make_dead,
    register_worker,
)
from .schemas import check, json_of


def _until(check: object, what: str, timeout: float = 30.0) -> None:
    """Poll ``check()`` until it is true; a generous bound only guards against hanging."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


# -- dlq -----------------------------------------------------------------------------------------
def test_dlq_list(cli: Cli, client: Client) -> None:
    assert assert_ok(cli("dlq", "list")) == "the dead letter queue is empty\n"
    make_dead(client, "d1", "exit 1")
    make_dead(client, "d2", "exit 1")
    rows = [line.split() for line in assert_ok(cli("dlq", "list")).splitlines()]
    assert rows[0] == ["ID", "QUEUE", "ATTEMPTS", "EXIT", "DIED", "LAST", "ERROR"]
    assert [r[0] for r in rows[1:]] == ["d1", "d2"]
    assert rows[1][1:4] == ["default", "1", "1"]
    records = json_of(cli("dlq", "list", "--json"), "job-list")
    assert [(r["id"], r["state"], r["last_error"]) for r in records] == [
        ("d1", "dead", "exit code 1"), ("d2", "dead", "exit code 1")]
    assert [r["id"] for r in json_of(cli("dlq", "list", "--json", "-n", "2"), "job-list")] == [
        "d1", "d2"]


def test_dlq_list_pages_with_a_cursor(cli: Cli, client: Client) -> None:
    for name in ("d1", "d2", "d3"):
        make_dead(client, name)
    first = cli("dlq", "list", "--json", "--limit", "2")
    assert first.code == 0
    assert [r["id"] for r in check(json.loads(first.out), "job-list")] == ["d1", "d2"]
    assert first.err == ("queuectl: showing 2 of 3 dead jobs; "
                         "for the next page add --cursor dead:2\n")
    rest = cli("dlq", "list", "--limit", "2", "--cursor", "dead:2")
    assert [line.split()[0] for line in assert_ok(rest).splitlines()[1:]] == ["d3"]
    assert assert_ok(cli("dlq", "list", "--cursor", "dead:9")) == (
        "no dead jobs from this cursor on\n")
    assert_error(cli("dlq", "list", "--cursor", "pending:2"), 3, "not dead ones")
    assert_error(cli("dlq", "list", "--cursor", "dead:x"), 3, "invalid cursor")


def test_dlq_retry_one_and_all(cli: Cli, client: Client) -> None:
    for name in ("d1", "d2", "d3"):
        make_dead(client, name)
    assert assert_ok(cli("dlq", "retry", "d2")) == "d2 requeued\n"
    assert client.get("d2").state is JobState.PENDING
    assert assert_ok(cli("dlq", "retry", "--all")) == "requeued 2 jobs\n"
    assert {client.get(i).state for i in ("d1", "d3")} == {JobState.PENDING}
    assert client.dlq_list().jobs == []
    assert assert_ok(cli("dlq", "retry", "--all")) == "requeued 0 jobs\n"


def test_dlq_retry_errors(cli: Cli, client: Client) -> None:
    assert_error(cli("dlq", "retry", "nope"), 4, "no job nope")
    assert_error(cli("dlq", "retry", "bad id"), 3, "invalid id")
    client.enqueue("true", job_id="alive")
    assert_error(cli("dlq", "retry", "alive"), 5, "not in the DLQ")
    assert_error(cli("dlq", "retry"), 2, "job id or --all")
    assert_error(cli("dlq", "retry", "alive", "--all"), 2, "job id or --all")


def test_dlq_purge_with_yes(cli: Cli, client: Client) -> None:
    make_dead(client, "d1")
    make_dead(client, "d2")
    client.enqueue("true", job_id="keep")
    assert assert_ok(cli("dlq", "purge", "--yes")) == "purged 2 jobs\n"
    assert client.find("d1") is None and client.find("d2") is None
    assert client.get("keep").state is JobState.PENDING
    assert assert_ok(cli("dlq", "purge", "-y")) == "purged 0 jobs\n"


def test_dlq_purge_without_a_terminal_needs_yes(cli: Cli, client: Client) -> None:
    make_dead(client, "d1")
    assert_error(cli("dlq", "purge"), 2, "--yes")
    assert client.get("d1").state is JobState.DEAD


@pytest.mark.parametrize(("answer", "code", "left"), [("y", 0, 0), ("n", 130, 1)])
def test_dlq_purge_asks_on_a_terminal(env: dict[str, str], client: Client, answer: str,
                                      code: int, left: int) -> None:
    make_dead(client, "d1")
    main, tty = os.openpty()
    try:
        os.write(main, f"{answer}\n".encode())
        proc = subprocess.run([QUEUECTL, "dlq", "purge"], env=env, stdin=tty,
                              capture_output=True, timeout=60, check=False)
    finally:
        os.close(tty)
        os.close(main)
    assert proc.returncode == code, proc.stderr
    assert b"Delete 1 dead job(s) and their output?" in proc.stdout
    assert proc.stderr == (b"queuectl: cancelled: nothing purged\n" if left else b"")
    assert len(client.dlq_list().jobs) == left


# -- config --------------------------------------------------------------------------------------
def test_config_list_get_set(cli: Cli, client: Client) -> None:
    rows = {line.split()[0]: line.split()[1:3]
            for line in assert_ok(cli("config", "list")).splitlines()[1:]}
    assert set(rows) >= {"max-retries", "backoff-base", "backoff-factor", "backoff-max",
                         "job-timeout"}
    assert rows["max-retries"] == ["3", "default"]

    assert assert_ok(cli("config", "set", "max-retries", "5")) == "max-retries = 5\n"
    assert assert_ok(cli("config", "set", "backoff-base", "0.5")) == "backoff-base = 0.5\n"
    assert assert_ok(cli("config", "get", "max-retries")) == "5\n"
    assert client.config_get("backoff-base") == "0.5"
    # Numbers as numbers, every field always there.
    listed = json_of(cli("config", "list", "--json"), "config-list")
    assert listed["max-retries"] == {"value": 5, "source": "redis", "invalid": None}
    assert listed["backoff-base"] == {"value": 0.5, "source": "redis", "invalid": None}
    assert listed["backoff-factor"] == {"value": 2, "source": "default", "invalid": None}
    assert json_of(cli("config", "get", "backoff-base", "--json"), "config-get") == {
        "key": "backoff-base", "value": 0.5, "source": "redis", "invalid": None}


def test_config_json_of_a_stored_value_that_is_not_used(cli: Cli, client: Client) -> None:
    client.redis.hset(client.keys.config, "max-retries", "lots")
    listed = cli("config", "list", "--json")
    assert listed.code == 0
    setting = check(json.loads(listed.out), "config-list")["max-retries"]
    assert (setting["value"], setting["source"]) == (3, "invalid")
    assert "not a whole number" in setting["invalid"]
    assert "queuectl: config max-retries: " in listed.err
    got = check(json.loads(cli("config", "get", "max-retries", "--json").out), "config-get")
    assert (got["value"], got["source"]) == (3, "invalid")


def test_config_takes_durations_unsets_and_names_the_environment(
        cli: Cli, client: Client, env: dict[str, str]) -> None:
    assert assert_ok(cli("config", "set", "job-timeout", "10m")) == "job-timeout = 600\n"
    assert assert_ok(cli("config", "set", "completed-ttl", "7d")) == "completed-ttl = 604800\n"
    from_env = env | {"QUEUECTL_POLICY__MAX_RETRIES": "7"}
    assert assert_ok(cli("config", "set", "max-retries", "1", env=from_env)) == \
        "max-retries = 1\n"
    # Unset, the environment's value applies again, and config list says where it is from.
    assert assert_ok(cli("config", "unset", "max-retries", env=from_env)) == "max-retries = 7\n"
    listed = json_of(cli("config", "list", "--json", env=from_env), "config-list")
    assert listed["max-retries"] == {"value": 7, "source": "env", "invalid": None}
    assert listed["job-timeout"] == {"value": 600, "source": "redis", "invalid": None}
    assert json_of(cli("config", "list", "--json"), "config-list")["max-retries"] == {
        "value": 3, "source": "default", "invalid": None}
    # Jitter: off by default (the contract's 2 s, 4 s, 8 s hold exactly), a fraction when set.
    assert assert_ok(cli("config", "get", "backoff-jitter")) == "0\n"
    assert assert_ok(cli("config", "set", "backoff-jitter", "0.25")) == "backoff-jitter = 0.25\n"
    assert_error(cli("config", "set", "backoff-jitter", "1.5"), 3, "must be <= 1")
    # A stored value that does not parse: the environment's value is in effect.
    client.redis.hset(client.keys.config, "max-retries", "lots")
    got = cli("config", "get", "max-retries", "--json", env=from_env)
    assert got.code == 0
    setting = check(json.loads(got.out), "config-get")
    assert (setting["value"], setting["source"]) == (7, "invalid")


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["get", "colour"], 3, "unknown config key 'colour'"),
    (["set", "colour", "1"], 3, "unknown config key"),
    (["set", "max-retries", "lots"], 3, "not a whole number"),
    (["set", "max-retries", "--", "-1"], 3, "must be >= 0"),
    # A negative number is a value, not an option: no '--' needed.
    (["set", "max-retries", "-1"], 3, "value must be >= 0, got -1"),
    (["set", "backoff-base", "-0.5"], 3, "value must be > 0, got -0.5"),
    (["set", "backoff-max", "-1e3"], 3, "value must be >= 0"),
    (["set", "backoff-base", "0"], 3, "must be > 0"),
    (["set", "backoff-factor", "0.5"], 3, "must be >= 1"),
    (["set", "job-timeout", "nan"], 3, "finite"),
    (["set", "max-retries"], 2, "Missing argument"),
    (["get"], 2, "Missing argument"),
    (["unset", "x"], 3, "unknown config key 'x'"),
    (["set", "job-timeout", "10 minutes"], 3, "not a number of seconds or a duration"),
    (["get", "colour", "--json"], 3, "unknown config key 'colour'"),
])
def test_config_errors(cli: Cli, client: Client, args: list[str], code: int,
                       fragment: str) -> None:
    assert_error(cli("config", *args), code, fragment)
    assert client.config_list()["max-retries"] == ("3", "default")


# -- worker --------------------------------------------------------------------------------------
def test_worker_list_and_stop(cli: Cli, client: Client) -> None:
    assert assert_ok(cli("worker", "list")) == "no workers\n"
    register_worker(client, "w1", queues="high,default", threads=8)
    register_worker(client, "w2")
    client.enqueue("sleep 10", job_id="held")
    client.store.fetch("w1", ["default"])

    rows = [line.split() for line in assert_ok(cli("worker", "list")).splitlines()]
    assert rows[0] == ["WORKER", "ALIVE", "THREADS", "QUEUES", "JOBS", "LAST", "BEAT"]
    assert rows[1][:5] == ["w1", "yes", "8", "high,default", "held"]
    assert rows[2][:5] == ["w2", "yes", "4", "default", "-"]
    listed = json_of(cli("worker", "list", "--json"), "worker-list")
    assert [(w["id"], w["alive"], w["threads"], w["queues"], w["jobs"]) for w in listed] == [
        ("w1", True, 8, ["high", "default"], ["held"]), ("w2", True, 4, ["default"], [])]

    assert assert_ok(cli("worker", "stop", "w2")) == "w2 asked to stop\n"
    assert client.redis.lrange(client.keys.control("w2"), 0, -1) == [b"stop"]
    assert client.redis.llen(client.keys.control("w1")) == 0
    out = assert_ok(cli("worker", "stop", "--all"))
    assert sorted(out.splitlines()) == ["w1 asked to stop", "w2 asked to stop"]
    assert client.redis.llen(client.keys.control("w1")) == 1


def test_a_worker_whose_status_expired_is_not_alive(cli: Cli, client: Client) -> None:
    register_worker(client, "gone", ttl=0.001)
    _until(lambda: not client.workers()[0].alive, "the status hash to expire")
    rows = [line.split() for line in assert_ok(cli("worker", "list")).splitlines()]
    assert rows[1][:2] == ["gone", "no"]
    assert assert_ok(cli("worker", "stop", "--all")) == "no live workers\n"
    assert_error(cli("worker", "stop", "gone"), 4, "no live worker gone")


def test_worker_stop_errors(cli: Cli) -> None:
    assert_error(cli("worker", "stop"), 2, "worker id or --all")
    assert_error(cli("worker", "stop", "w1", "--all"), 2, "worker id or --all")
    assert_error(cli("worker", "stop", "nobody"), 4, "no live worker nobody")


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["--count", "0"], 3, "invalid value for --count: must be at least 1"),
    (["--count", "x"], 3, "invalid value for --count: must be a whole number"),
    (["--queues", "good,bad name"], 3, "invalid queue name 'bad name'"),
    (["--queues", "a,a"], 3, "twice"),
    (["--queues", ","], 3, "at least one queue"),
])
def test_worker_start_errors(cli: Cli, args: list[str], code: int, fragment: str) -> None:
    assert_error(cli("worker", "start", *args), code, fragment)


def test_worker_start_runs_jobs_until_stopped(env: dict[str, str], cli: Cli,
                                              client: Client) -> None:
    with background(env, "worker", "start", "--count", "2", "--queues", "high,default") as proc:
        _until(lambda: any(w.alive for w in client.workers()), "the worker to register")
        worker = client.workers()[0]
        assert (worker.fields["threads"], worker.fields["queues"]) == ("2", "high,default")
        job_id = assert_ok(cli("enqueue", "--quiet", "--", "echo from-the-worker")).strip()
        assert assert_ok(cli("wait", job_id, "--timeout", "60")) == f"{job_id} completed\n"
        assert cli("logs", job_id).stdout.endswith(b"from-the-worker\n")
        assert assert_ok(cli("worker", "stop", "--all")) == f"{worker.id} asked to stop\n"
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err


# -- scheduler -----------------------------------------------------------------------------------
def test_scheduler_promotes_due_jobs_and_stops_on_sigterm(env: dict[str, str], cli: Cli,
                                                          client: Client) -> None:
    client.enqueue("true", job_id="soon", delay=0.2)
    client.enqueue("true", job_id="retry", max_retries=1)
    finish(client, "retry", exit_code=1)  # due after backoff-base (2 s by default)
    with background(env, "scheduler") as proc:
        _until(lambda: client.get("soon").state is JobState.PENDING, "the delayed job")
        _until(lambda: client.get("retry").state is JobState.PENDING, "the retry")
        status = json_of(cli("status", "--json"), "status")
        assert len(status["schedulers"]) == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert b"Traceback" not in err
