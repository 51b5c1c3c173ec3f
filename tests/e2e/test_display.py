"""What a job wrote is shown, never obeyed: escaped in tables, ``show``, errors and service
logs, exact in JSON; and a record's times that no datetime can hold do not break a command."""

from __future__ import annotations

import pytest
import redis

from queuectl.core.client import Client
from tests.integration.procs import Procs, eventually

from .helpers import Cli, assert_ok, finish
from .schemas import json_of

# Right-to-left override, colour, a window-title sequence, a C1 CSI, a newline and a NUL.
HOSTILE = "rm -rf ~ #\u202egnp.sh \x1b[31mred\x1b]0;owned\x07 \x9b2J\nfake\x00"
ESCAPED = "rm -rf ~ #\\u202egnp.sh \\x1b[31mred\\x1b]0;owned\\x07 \\x9b2J\\nfake\\x00"
RAW = ("\u202e", "\x1b", "\x07", "\x9b", "\x00")


def assert_no_raw(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text)


def test_list_and_show_escape_what_the_job_wrote(cli: Cli, client: Client) -> None:
    command = HOSTILE.replace("\x00", "")  # a command may not hold NUL
    command_shown = ESCAPED.replace("\\x00", "")
    client.enqueue(command, job_id="evil", max_retries=0)
    finish(client, "evil", b"out\n", exit_code=1)  # last_error: "exit code 1"
    client.store.redis.hset(client.keys.job("evil"), "last_error", f"exit code 1: {HOSTILE}")

    listed = assert_ok(cli("list"))
    assert_no_raw(listed)
    assert len(listed.splitlines()) == 2
    assert command_shown[:40] in listed

    shown = assert_ok(cli("show", "evil"))
    assert_no_raw(shown)
    assert f"command      {command_shown}" in shown
    assert f"last_error   exit code 1: {ESCAPED}" in shown
    dead = assert_ok(cli("dlq", "list"))
    assert_no_raw(dead)

    # JSON stays exact: a script reading it gets the bytes the job really has.
    record = json_of(cli("show", "evil", "--json"), "job")
    assert (record["command"], record["last_error"]) == (command, f"exit code 1: {HOSTILE}")
    assert json_of(cli("list", "--json"), "job-list")[0]["command"] == command


@pytest.mark.parametrize("value", ["99999999999999999999", "1" + "0" * 31, "253402300800"])
def test_a_time_past_the_year_9999_does_not_break_show_or_list(
        cli: Cli, client: Client, raw: redis.Redis, value: str) -> None:
    client.enqueue("true", job_id="far")
    raw.hset(client.keys.job("far"), mapping={"run_at": value, "updated_at": value})
    for args in (["show", "far"], ["list"], ["list", "--state", "pending"]):
        assert_ok(cli(*args))
    for args, schema in ((["show", "far", "--json"], "job"), (["list", "--json"], "job-list")):
        out = json_of(cli(*args), schema)
        record = out if isinstance(out, dict) else out[0]
        assert record["run_at"] == f"out of range: {float(value)!r} s since 1970-01-01"
    assert "run_at       out of range: " in assert_ok(cli("show", "far"))


def test_a_failed_jobs_output_cannot_forge_a_worker_log_line(procs: Procs,
                                                              client: Client) -> None:
    """The worker logs a failed job's last output line: U+2028 and \\x0c break lines for
    str.splitlines and log viewers (bytes.splitlines does not cut there)."""
    forged = "2026-01-01T00:00:00+0000 ERROR worker fake"
    command = (f"printf 'boom\\000 \\342\\200\\250{forged}\\014{forged} \\033[2J'; exit 3")
    client.enqueue(command, job_id="forger", max_retries=0)
    worker = procs.worker({"QUEUECTL_WORKER_ID": "w-display"})

    def failed_line() -> str | None:
        return next((line for line in worker.stderr().splitlines()
                     if "job forger failed" in line), None)

    line = eventually(failed_line, 30, what="the worker logs the failure")
    worker.signal()
    assert worker.wait_exit() == 0
    assert line is not None
    assert "boom\\x00 \\u2028" + forged + "\\x0c" + forged + " \\x1b[2J" in line
    text = worker.stderr()
    assert not any(ln.startswith(forged) for ln in text.splitlines()), text
    assert_no_raw(text)
    assert "\u2028" not in text and "\x0c" not in text
