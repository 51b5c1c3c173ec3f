"""Values on the command line as a user types them: negative numbers need no '--', and a
lone '-' is one JSON job read from stdin."""

from __future__ import annotations

import json

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState

from .helpers import Cli, assert_error, assert_ok


# -- negative numbers are values, wherever a value is taken -----------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["config", "set", "max-retries", "-1"], "invalid value for max-retries: value must be "
                                             ">= 0, got -1"),
    (["config", "set", "backoff-factor", "-2.5"], "invalid value for backoff-factor: value "
                                                  "must be >= 1, got -2.5"),
    (["enqueue", "--max-retries", "-1", "--", "true"], "invalid max_retries: must be at "
                                                       "least 0"),
    (["enqueue", "--timeout", "-5", "--", "true"], "invalid duration '-5'"),
    (["list", "--limit", "-1"], "invalid value for --limit: must be at least 0 (got '-1')"),
    (["dlq", "list", "-n", "-3"], "invalid value for --limit: must be at least 1 (got '-3')"),
    (["wait", "x", "--timeout", "-1"], "invalid duration '-1'"),
])
def test_a_negative_number_reaches_the_check_of_its_value(cli: Cli, client: Client,
                                                          args: list[str],
                                                          message: str) -> None:
    line = assert_error(cli(*args), 3)
    assert line.startswith(f"queuectl: error: {message}"), line
    assert client.config_list()["max-retries"] == ("3", "default")


def test_a_job_id_that_looks_like_a_negative_number(cli: Cli) -> None:
    assert assert_ok(cli("enqueue", "--id", "-1", "--", "true")) == "-1 pending\n"
    assert json.loads(assert_ok(cli("show", "-1", "--json")))["id"] == "-1"
    assert assert_ok(cli("cancel", "-1")) == "-1 cancelled (was pending)\n"
    waited = cli("wait", "-1", "--timeout", "5")
    assert (waited.code, waited.out) == (1, "-1 cancelled\n")


def test_options_are_still_options(cli: Cli) -> None:
    assert_error(cli("config", "set", "max-retries", "-x"), 2, "No such option: -x")
    assert_error(cli("show", "-x"), 2, "No such option: -x")
    assert_error(cli("list", "--limit", "5", "-9", "--json"), 2, "unexpected extra argument")


# -- enqueue -: one JSON job from stdin ---------------------------------------------------------
def test_a_lone_dash_enqueues_one_json_job_from_stdin(cli: Cli, client: Client) -> None:
    job = {"id": "from-stdin", "command": "echo hi", "max_retries": 2}
    assert assert_ok(cli("enqueue", "-", input=json.dumps(job) + "\n")) == "from-stdin pending\n"
    # Pretty-printed JSON spans lines: still one job.
    pretty = json.dumps({"id": "pretty", "command": "date"}, indent=2)
    assert assert_ok(cli("enqueue", "-", "--quiet", input=pretty)) == "pretty\n"
    stored = client.get("from-stdin")
    assert (stored.command, stored.max_retries, stored.state) == ("echo hi", 2,
                                                                 JobState.PENDING)


@pytest.mark.parametrize(("data", "message"), [
    ('{"command":"a"}\n{"command":"b"}\n', "stdin: invalid JSON: Extra data at column 1: "
                                           "'enqueue -' reads one JSON job; for one job per "
                                           "line use --file -"),
    ("", "stdin is empty: 'enqueue -' reads one JSON job object from it"),
    ("echo hi\n", "stdin: invalid JSON: Expecting value at column 1"),
    ("[]", "stdin: a job must be a JSON object, not an array"),
    ('{"command":"x","colour":"red"}', "stdin: unknown field 'colour'"),
    (b"\xff\xfe", "stdin: invalid JSON: not UTF-8 text"),
    ('{"command":"' + "x" * (1 << 20) + '"}', "stdin: invalid JSON: longer than 1048576 bytes"),
])
def test_stdin_that_is_not_one_job_is_refused(cli: Cli, client: Client, data: str | bytes,
                                              message: str) -> None:
    assert assert_error(cli("enqueue", "-", input=data), 3) == f"queuectl: error: {message}"
    assert client.status().states["pending"] == 0


def test_flags_go_in_the_json(cli: Cli) -> None:
    assert_error(cli("enqueue", "--id", "x", "-", input='{"command":"true"}'), 2,
                 "--id cannot be combined with a JSON job")
    assert_error(cli("enqueue", "-", "extra", input='{"command":"true"}'), 2, "after '--'")
