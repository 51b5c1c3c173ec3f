"""``list``, ``show``, ``logs``, ``wait`` and ``cancel``, against jobs driven through the store
the way a worker drives them."""

from __future__ import annotations

import json
import re
import signal
import time
from typing import Any

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState

from .helpers import (
    FAKE_WORKER,
    Cli,
    assert_error,
    assert_ok,
    background,
    finish,
    make_dead,
    take,
)
from .schemas import check, json_of


def _lines(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


# -- list --------------------------------------------------------------------------------------
def test_list_every_state_as_table_and_json(cli: Cli, client: Client) -> None:
    make_dead(client, "d1")
    client.enqueue("echo p", job_id="p1")
    client.enqueue("echo m", job_id="m1", queue="mail")
    client.enqueue("echo later", job_id="s1", delay=3600)
    client.enqueue("echo done", job_id="c1")
    finish(client, "p1")  # p1 is first in the default queue

    rows = _lines(assert_ok(cli("list")))
    assert rows[0] == ["ID", "STATE", "QUEUE", "ATTEMPTS", "UPDATED", "COMMAND"]
    by_id = {row[0]: row for row in rows[1:]}
    assert {i: r[1] for i, r in by_id.items()} == {
        "c1": "pending", "m1": "pending", "s1": "scheduled", "p1": "completed", "d1": "dead"}
    assert by_id["m1"][2] == "mail"
    assert by_id["p1"][3] == "1"

    records = json_of(cli("list", "--json"), "job-list")
    assert {r["id"]: r["state"] for r in records} == {i: r[1] for i, r in by_id.items()}
    # The same fields, from the same function, as show --json and dlq list --json.
    shown = json_of(cli("show", "d1", "--json"), "show")
    assert [r for r in records if r["id"] == "d1"] == [shown]
    assert json_of(cli("dlq", "list", "--json"), "job-list") == [shown]
    assert shown["log_size"] == shown["log_kept"] == 5  # "boom\n"


def test_list_filters_and_limit(cli: Cli, client: Client) -> None:
    for i in range(5):
        client.enqueue(f"echo {i}", job_id=f"j{i}")
    client.enqueue("echo m", job_id="m1", queue="mail")
    finish(client, "j0")

    pending = json_of(cli("list", "--state", "pending", "--json"), "job-list")
    assert [r["id"] for r in pending] == ["j1", "j2", "j3", "j4", "m1"]
    mail = json_of(cli("list", "--queue", "mail", "--json"), "job-list")
    assert [r["id"] for r in mail] == ["m1"]
    first = cli("list", "-s", "pending", "--limit", "2", "--json")
    assert first.code == 0 and [r["id"] for r in check(json.loads(first.out), "job-list")] == [
        "j1", "j2"]
    # Rows left out are said on stderr, counted from the lists' lengths, with the way on.
    assert first.err == ("queuectl: showing 2 of 5 pending jobs; "
                         "for the next page add --cursor pending:2\n")
    rest = json_of(cli("list", "-s", "pending", "--cursor", "pending:2", "--json"), "job-list")
    assert [r["id"] for r in rest] == ["j3", "j4", "m1"]
    # --limit 0 lists everything; without a state the cursor names where to go on.
    assert len(json_of(cli("list", "--limit", "0", "--json"), "job-list")) == 6
    assert cli("list", "-n", "5").err == ("queuectl: showing 5 of 6 jobs; "
                                          "for the next page add --cursor completed:0\n")
    again = cli("list", "-n", "1", "--cursor", "pending:1")
    assert again.err == ("queuectl: showing 1 of 6 jobs from cursor pending:1; "
                         "for the next page add --cursor pending:2\n")
    assert cli("list", "-n", "1", "--queue", "default").err == (
        "queuectl: showing 1 of 5 jobs of queue default; "
        "for the next page add --cursor pending:1\n")
    done = json.loads(assert_ok(cli("list", "--state", "completed", "--json")))
    assert [r["id"] for r in done] == ["j0"]
    assert assert_ok(cli("list", "--state", "cancelled")) == "no jobs\n"
    assert json.loads(assert_ok(cli("list", "--state", "dead", "--json"))) == []


def test_list_errors(cli: Cli) -> None:
    assert_error(cli("list", "--state", "sleeping"), 3, "unknown state 'sleeping'")
    assert_error(cli("list", "--queue", "a b"), 3, "invalid queue name")
    assert_error(cli("list", "--limit", "-1"), 3, "invalid value for --limit: must be at least 0")
    assert_error(cli("list", "--cursor", "nowhere"), 3, "invalid cursor")
    assert_error(cli("list", "extra"), 2)


# -- show --------------------------------------------------------------------------------------
def test_show_every_field(cli: Cli, client: Client) -> None:
    client.enqueue("printf 'a\\nb'", job_id="shown", max_retries=2, timeout=90)
    finish(client, "shown", b"a\nb", exit_code=4)  # a failure with a retry pending

    out = assert_ok(cli("show", "shown"))
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in out.splitlines()}
    assert fields["id"] == "shown"
    assert fields["command"] == "printf 'a\\nb'"
    assert fields["state"] == "failed"
    assert fields["attempts"] == "1"
    assert fields["max_retries"] == "2"
    assert fields["timeout"] == "1m30s"
    assert fields["exit_code"] == "4"
    assert fields["last_error"] == "exit code 4"
    assert fields["worker"] == FAKE_WORKER
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \((now|\S+ ago)\)",
                        fields["created_at"]), fields["created_at"]
    assert fields["finished_at"] != "-"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \((now|\S+ ago)\)",
                        fields["spawned_at"]), fields["spawned_at"]
    assert fields["output"].startswith("3 bytes produced, last 3 kept")

    record = json_of(cli("show", "shown", "--json"), "job")
    assert record["state"] == "failed" and record["exit_code"] == 4
    assert (record["attempts"], record["max_retries"], record["timeout"]) == (1, 2, 90)
    assert record["log_size"] == 3 and record["log_kept"] == 3
    assert record["created_at"].endswith("Z") and record["run_at"].endswith("Z")
    assert record["started_at"] is None or record["started_at"].endswith("Z")
    assert record["started_at"] <= record["spawned_at"] <= record["finished_at"]
    assert record["spawned_at"].endswith("Z")


def test_show_errors(cli: Cli) -> None:
    assert_error(cli("show", "nope"), 4, "no job nope")
    assert_error(cli("show", "bad/id"), 3, "invalid id")
    assert_error(cli("show"), 2, "Missing argument")


# -- logs --------------------------------------------------------------------------------------
def test_logs_prints_raw_bytes(cli: Cli, client: Client) -> None:
    output = b"line one\n\xff\xfe not utf-8 \x00 nul\n"
    client.enqueue("cat /dev/urandom", job_id="raw")
    finish(client, "raw", output)
    result = cli("logs", "raw")
    assert result.code == 0 and result.stderr == b""
    assert result.stdout == output


def test_logs_of_a_job_without_output(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="quiet")
    result = cli("logs", "quiet")
    assert (result.code, result.stdout, result.stderr) == (0, b"", b"")


def test_logs_says_how_much_was_dropped(cli: Cli, client: Client) -> None:
    cap = client.store.log_cap
    output = bytes(range(256)) * ((cap + 5000) // 256 + 1)
    client.enqueue("yes", job_id="big")
    finish(client, "big", output)
    result = cli("logs", "big")
    assert result.code == 0
    assert result.stdout == output[-cap:]
    dropped = len(output) - cap
    assert result.err.splitlines() == [
        f"queuectl: {dropped} earlier bytes were dropped (the last {cap} bytes are kept)"]


def test_logs_follow_prints_new_bytes_until_the_job_ends(env: dict[str, str],
                                                         client: Client) -> None:
    client.enqueue("a long job", job_id="live")
    held = take(client, "live")
    client.store.log_append(held, FAKE_WORKER, b"first\n", 6)
    with background(env, "logs", "live", "--follow") as proc:
        assert proc.stdout is not None
        # Blocking reads: each chunk must arrive before the next one is shipped.
        assert proc.stdout.read(6) == b"first\n"
        client.store.log_append(held, FAKE_WORKER, b"second\n", 7)
        assert proc.stdout.read(7) == b"second\n"
        client.store.complete(held, FAKE_WORKER, b"last\xff\n", 6)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out == b"last\xff\n"
    assert err == b""


def test_logs_follow_of_an_ended_job_returns_at_once(cli: Cli, client: Client) -> None:
    client.enqueue("echo x", job_id="ended")
    finish(client, "ended", b"x\n")
    result = cli("logs", "--follow", "ended", timeout=30)
    assert (result.code, result.stdout, result.stderr) == (0, b"x\n", b"")


def test_logs_errors(cli: Cli) -> None:
    assert_error(cli("logs", "nope"), 4, "no job nope")
    assert_error(cli("logs", "--follow", "nope"), 4, "no job nope")
    assert_error(cli("logs", "bad id"), 3, "invalid id")


# -- wait --------------------------------------------------------------------------------------
def test_wait_for_completed_jobs(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="w1")
    client.enqueue("true", job_id="w2")
    finish(client, "w1")
    finish(client, "w2")
    assert assert_ok(cli("wait", "w1", "w2", "w1")) == "w1 completed\nw2 completed\n"


def test_wait_exits_1_when_a_job_did_not_complete(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="ok")
    finish(client, "ok")
    make_dead(client, "bad")
    client.enqueue("sleep 1", job_id="gone")
    client.cancel("gone")
    result = cli("wait", "ok", "bad", "gone")
    assert result.code == 1 and result.err == ""
    assert result.out == "ok completed\nbad dead\ngone cancelled\n"


def test_wait_json(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="ok")
    finish(client, "ok", b"fine\n")
    make_dead(client, "bad")
    result = cli("wait", "--json", "ok", "bad", "ok")
    assert result.code == 1 and result.err == ""
    data = check(json.loads(result.out), "wait")
    assert data["all_completed"] is False
    assert [(j["id"], j["state"]) for j in data["jobs"]] == [("ok", "completed"), ("bad", "dead")]
    ok = data["jobs"][0]["job"]
    assert (ok["exit_code"], ok["log_size"], ok["log_kept"]) == (0, 5, 5)
    assert ok == json_of(cli("show", "ok", "--json"), "job")
    assert json_of(cli("wait", "ok", "--json"), "wait")["all_completed"] is True


def test_wait_reads_ids_from_stdin(cli: Cli, client: Client) -> None:
    for name in ("a", "b", "c"):
        client.enqueue("true", job_id=name)
        finish(client, name)
    # One id a line; blanks around an id and blank lines are ignored; '-' mixes with ids.
    out = assert_ok(cli("wait", "-", input="a\n\n  b  \n\n"))
    assert out == "a completed\nb completed\n"
    assert assert_ok(cli("wait", "c", "-", input="a\n")) == "c completed\na completed\n"
    # An empty pipe (nothing was enqueued) is nothing to wait for.
    assert assert_ok(cli("wait", "-", input="")) == ""
    assert json_of(cli("wait", "-", "--json", input="\n"), "wait") == {
        "all_completed": True, "jobs": []}
    assert_error(cli("wait", "-", input="a\nno good\n"), 3, "stdin line 2: invalid id")
    assert_error(cli("wait", "-", input="a\nmissing\n"), 4, "no job missing")


def test_wait_blocks_until_the_job_ends(env: dict[str, str], client: Client) -> None:
    client.enqueue("true", job_id="slow")
    with background(env, "wait", "slow", "--timeout", "60") as proc:
        held = take(client, "slow")
        client.store.complete(held, FAKE_WORKER, b"", 0)
        out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, b"slow completed\n", b"")


@pytest.mark.parametrize("args", [["wait", "stuck"], ["logs", "--follow", "stuck"]])
def test_ctrl_c_while_blocked_exits_130_quietly(env: dict[str, str], client: Client,
                                                args: list[str]) -> None:
    client.enqueue("true", job_id="stuck")
    held = take(client, "stuck")
    client.store.log_append(held, FAKE_WORKER, b"started\n", 8)
    with background(env, *args) as proc:
        assert proc.stdout is not None
        if args[0] == "logs":
            assert proc.stdout.read(8) == b"started\n"
        else:
            # wait prints nothing until the end: its first poll must have found the job.
            _poll_until_connected(client)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (130, b"")
    assert out == b""


def _poll_until_connected(client: Client) -> None:
    """Until another connection (the CLI's) has read a job record: it is polling."""
    deadline = time.monotonic() + 30
    mine = client.redis.client_id()
    while not [c for c in client.redis.client_list()
               if int(c["id"]) != mine and c["cmd"] in ("hget", "zmscore")]:
        assert time.monotonic() < deadline, "the CLI never polled"
        time.sleep(0.05)


def test_wait_timeout_exits_7(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="never")
    assert_error(cli("wait", "never", "--timeout", "300ms"), 7, "timed out", "never")
    assert_error(cli("wait", "never", "-t", "0.2"), 7)


def test_wait_errors(cli: Cli, client: Client) -> None:
    client.enqueue("true", job_id="real")
    assert_error(cli("wait", "real", "nope", "--timeout", "5"), 4, "no job nope")
    assert_error(cli("wait", "bad id"), 3, "invalid id")
    assert_error(cli("wait", "real", "--timeout", "forever"), 3, "invalid duration")
    assert_error(cli("wait"), 2, "Missing argument")


# -- cancel ------------------------------------------------------------------------------------
@pytest.mark.parametrize("setup", ["pending", "scheduled", "failed", "processing"])
def test_cancel_a_job_that_has_not_ended(cli: Cli, client: Client, setup: str) -> None:
    args: dict[str, Any] = {"delay": 3600} if setup == "scheduled" else {}
    client.enqueue("sleep 100", job_id="victim", max_retries=3, **args)
    if setup == "failed":
        finish(client, "victim", exit_code=1)
    elif setup == "processing":
        take(client, "victim")
    assert client.get("victim").state.value == setup
    assert assert_ok(cli("cancel", "victim")) == f"victim cancelled (was {setup})\n"
    assert client.get("victim").state is JobState.CANCELLED
    assert client.list_jobs(JobState.CANCELLED).jobs[0].id == "victim"


def test_cancel_errors(cli: Cli, client: Client) -> None:
    assert_error(cli("cancel", "nope"), 4, "no job nope")
    assert_error(cli("cancel", "bad id"), 3, "invalid id")
    client.enqueue("true", job_id="done")
    finish(client, "done")
    assert_error(cli("cancel", "done"), 5, "already ended")
    assert_error(cli("cancel"), 2)
