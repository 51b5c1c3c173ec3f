"""``queuectl enqueue``: the note's JSON form, flags after which '--' starts the command,
and JSON-lines files."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState

from .helpers import QUEUECTL, Cli, assert_error, assert_ok, finish, run_measured
from .schemas import json_of

# A run_at may be at most ten years ahead: next year is a safe "later".
NEXT_YEAR = datetime.now(UTC).year + 1


def test_json_form_of_the_note(cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", '{"id":"job1","command":"sleep 2","max_retries":3}'))
    assert out == "job1 pending\n"
    job = client.get("job1")
    assert (job.command, job.max_retries, job.queue, job.state) == (
        "sleep 2", 3, "default", JobState.PENDING)
    assert job.attempts == 0


def test_flags_and_command_after_dashdash(cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", "--id", "j2", "--queue", "mail", "--max-retries", "2",
                        "--timeout", "30", "--", "echo", "hello", "world"))
    assert out == "j2 pending\n"
    job = client.get("j2")
    assert (job.command, job.queue, job.max_retries, job.timeout) == (
        "echo hello world", "mail", 2, 30.0)
    assert client.list_jobs(JobState.PENDING, "mail").jobs[0].id == "j2"


def test_timeout_accepts_a_duration(cli: Cli, client: Client) -> None:
    assert_ok(cli("enqueue", "--id", "t", "--timeout", "1m30s", "--", "true"))
    assert client.get("t").timeout == 90.0


def test_generated_id_json_and_quiet_output(cli: Cli, client: Client) -> None:
    record = json_of(cli("enqueue", "--json", "--", "echo hi"), "job")
    assert record["command"] == "echo hi" and record["state"] == "pending"
    assert record["id"] and client.get(record["id"]).command == "echo hi"
    assert record == json_of(cli("show", record["id"], "--json"), "job")
    quiet = assert_ok(cli("enqueue", "--quiet", "--", "true")).strip()
    assert client.get(quiet).state is JobState.PENDING
    note = json_of(cli("enqueue", "--json", '{"id":"n1","command":"true"}'), "job")
    assert note["id"] == "n1" and note["state"] == "pending"


def test_a_command_that_looks_like_json_is_a_command_after_dashdash(
        cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", "--id", "brackets", "--", "[ -d / ] && echo yes"))
    assert out == "brackets pending\n"
    assert client.get("brackets").command == "[ -d / ] && echo yes"


def test_delay_schedules_the_job(cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", "--id", "later", "--delay", "1m30s", "--", "date"))
    assert out == "later scheduled\n"
    job = client.get("later")
    assert job.state is JobState.SCHEDULED and job.run_at is not None
    # Computed from the CLI's clock, checked against the server's: both are this machine.
    assert 80 < job.run_at - job.created_at < 100


def test_run_at_schedules_the_job(cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", "--id", "at", "--run-at", f"{NEXT_YEAR}-12-01T10:00:00Z",
                        "--", "date"))
    assert out == "at scheduled\n"
    assert client.get("at").run_at == datetime(NEXT_YEAR, 12, 1, 10, tzinfo=UTC).timestamp()
    assert_ok(cli("enqueue", "--id", "at2", "--run-at", f"{NEXT_YEAR}-12-01T12:00:00+02:00",
                  "--", "date"))
    assert client.get("at2").run_at == client.get("at").run_at


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (['{"command": "x",'], 3, "invalid JSON"),
    (['{"command":"x","colour":"red"}'], 3, "unknown field 'colour'"),
    (['{"id":"job1"}'], 3, "missing field 'command'"),
    (['[{"command":"x"}]'], 3, "not an array"),
    (["42"], 3, "not a number"),
    (['"echo hi"'], 3, "not a string"),
    (["null"], 3, "not null"),
    (['{"id":"bad id!","command":"x"}'], 3, "invalid id"),
    (['{"command":"x","queue":"no/slash"}'], 3, "invalid queue name"),
    (['{"command":"x","max_retries":-1}'], 3, "max_retries"),
    (['{"command":"   "}'], 3, "command is empty"),
    (["--id", "bad id", "--", "true"], 3, "invalid id"),
    (["--id", "x" * 129, "--", "true"], 3, "invalid id"),
    (["--max-retries", "-1", "--", "true"], 3, "max_retries"),
    (["--delay", "10 parsecs", "--", "true"], 3, "invalid duration"),
    (["--delay", "-5s", "--", "true"], 3, "invalid duration"),
    (["--timeout", "soon", "--", "true"], 3, "invalid duration"),
    (["--run-at", "next tuesday", "--", "true"], 3, "invalid --run-at"),
    (["echo hi"], 2, "after '--'"),
    (["echo", "hi"], 2, "after '--'"),
    ([], 2, "nothing to enqueue"),
    (["--id", "x", '{"command":"true"}'], 2, "cannot be combined"),
    (['{"command":"true"}', "--"], 2, "nothing may precede it"),
    (["echo", "--", "hi"], 2, "nothing may precede it"),
    (["--"], 2, "nothing to enqueue"),
    (["--delay", "1s", "--run-at", "2030-01-01T00:00:00Z", "--", "true"], 2, "not both"),
    (["--max-retries", "many", "--", "true"], 3, "invalid value for --max-retries"),
    (["--max-retries", "-1", "--", "true"], 3, "invalid max_retries: must be at least 0"),
    (["--no-such-flag", "--", "true"], 2, "No such option"),
])
def test_invalid_jobs_are_refused_and_nothing_is_stored(
        cli: Cli, client: Client, args: list[str], code: int, fragment: str) -> None:
    assert_error(cli("enqueue", *args), code, fragment)
    assert sum(client.status().states.values()) == 0


def test_a_json_value_that_is_not_an_object_is_never_run(cli: Cli, client: Client) -> None:
    assert_error(cli("enqueue", '["rm", "-rf", "/tmp/x"]'), 3, "not an array")
    assert client.list_jobs().jobs == []


def test_duplicate_id_is_a_conflict(cli: Cli, client: Client) -> None:
    assert_ok(cli("enqueue", "--id", "dup", "--", "echo one"))
    assert_error(cli("enqueue", "--id", "dup", "--", "echo two"), 5, "dup", "already exists")
    # --replace only replaces a job that has ended.
    assert_error(cli("enqueue", "--replace", "--id", "dup", "--", "echo two"), 5,
                 "already exists and is pending")
    assert client.get("dup").command == "echo one"


def test_replace_an_ended_job(cli: Cli, client: Client) -> None:
    assert_ok(cli("enqueue", '{"id":"again","command":"echo one"}'))
    finish(client, "again", b"one\n")
    assert client.get("again").state is JobState.COMPLETED
    assert_error(cli("enqueue", '{"id":"again","command":"echo two"}'), 5, "--replace")
    out = assert_ok(cli("enqueue", "--replace", '{"id":"again","command":"echo two"}'))
    assert out == "again pending\n"
    job = client.get("again")
    assert (job.command, job.state, job.attempts, job.log_size) == (
        "echo two", JobState.PENDING, 0, 0)


# -- --file --------------------------------------------------------------------------------------
def test_file_with_blank_lines(cli: Cli, client: Client, tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"id":"f1","command":"echo 1"}\n\n   \n'
                    '{"id":"f2","command":"echo 2","queue":"bulk"}\n'
                    f'{{"command":"echo 3","run_at":"{NEXT_YEAR}-01-01T00:00:00Z"}}\n')
    out = assert_ok(cli("enqueue", "--file", str(path)))
    assert out == "enqueued 3 jobs\n"
    assert client.get("f1").command == "echo 1"
    assert client.get("f2").queue == "bulk"
    assert client.status().states["scheduled"] == 1


def test_file_from_stdin(cli: Cli, client: Client) -> None:
    lines = "".join(json.dumps({"id": f"s{i}", "command": f"echo {i}"}) + "\n" for i in range(5))
    summary = json_of(cli("enqueue", "--file", "-", "--json", input=lines), "enqueue-file")
    assert summary == {"ids": [f"s{i}" for i in range(5)], "enqueued": 5, "pending": 5,
                       "scheduled": 0, "skipped": [], "total": 5, "error": None}
    assert [j.id for j in client.list_jobs(JobState.PENDING).jobs] == [f"s{i}" for i in range(5)]


def test_file_quiet_prints_each_enqueued_id(cli: Cli, client: Client) -> None:
    client.enqueue("echo old", job_id="taken")
    lines = ('{"id":"a","command":"true"}\n{"command":"true"}\n\n'
             '{"id":"taken","command":"true"}\n'
             f'{{"command":"true","run_at":"{NEXT_YEAR}-01-01T00:00:00Z"}}\n')
    ids = assert_ok(cli("enqueue", "--file", "-", "--quiet", input=lines)).splitlines()
    # One id a line, in file order, generated ones too; a skipped line is not enqueued.
    assert len(ids) == 3 and ids[0] == "a"
    assert [client.get(i).state for i in ids] == [
        JobState.PENDING, JobState.PENDING, JobState.SCHEDULED]
    assert "taken" not in ids
    summary = json_of(cli("enqueue", "--file", "-", "--json",
                          input='{"command":"true"}\n{"id":"taken","command":"true"}\n'),
                      "enqueue-file")
    assert (len(summary["ids"]), summary["enqueued"]) == (1, 1)
    assert [s["id"] for s in summary["skipped"]] == ["taken"]
    assert client.get(summary["ids"][0]).state is JobState.PENDING
    # A file without a job enqueues none and prints no id.
    assert assert_ok(cli("enqueue", "--file", "-", "--quiet", input="\n")) == ""
    assert json_of(cli("enqueue", "--file", "-", "--json", input=""), "enqueue-file")["ids"] == []


@pytest.mark.parametrize(("content", "fragment"), [
    ('{"command":"ok"}\n{"command":"ok"}\n{"command": oops}\n', "line 3: invalid JSON"),
    ('{"command":"ok"}\n\n[{"command":"x"}]\n', "line 3: a job must be a JSON object"),
    ('{"command":"ok"}\n{"command":"x","extra":1}\n', "line 2: unknown field 'extra'"),
    ('{"id":"a","command":"x"}\n{"id":"b","command":"x"}\n{"id":"a","command":"y"}\n',
     "line 3: id a repeats line 1"),
    ('{"command":"ok"}\n"just a string"\n', "line 2:"),
])
def test_file_with_a_bad_line_enqueues_nothing(
        cli: Cli, client: Client, tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    assert_error(cli("enqueue", "--file", str(path)), 3, fragment)
    assert sum(client.status().states.values()) == 0


def test_file_with_invalid_utf8_names_the_line(cli: Cli, client: Client) -> None:
    data = b'{"command":"ok"}\n{"command":"caf\xe9"}\n'
    assert_error(cli("enqueue", "-f", "-", input=data), 3, "line 2: not valid UTF-8")
    assert client.list_jobs().jobs == []


def test_file_errors(cli: Cli, tmp_path: Path) -> None:
    assert_error(cli("enqueue", "--file", str(tmp_path / "missing.jsonl")), 3, "cannot read")
    assert_error(cli("enqueue", "--file", "-", "--id", "x", input=""), 2, "--file")
    assert_error(cli("enqueue", "--file", "-", "--", "true", input=""), 2, "--file")


def test_file_lines_whose_id_exists_are_skipped_and_counted(cli: Cli, client: Client) -> None:
    client.enqueue("echo old", job_id="taken")
    lines = ('{"id":"new1","command":"true"}\n{"id":"taken","command":"true"}\n'
             '{"id":"new2","command":"true"}\n')
    out = assert_ok(cli("enqueue", "--file", "-", input=lines))
    assert out.splitlines() == [
        "enqueued 2 jobs, skipped 1 existing", "skipped: job taken already exists and is pending"]
    assert client.get("new1").state is JobState.PENDING
    assert client.get("new2").state is JobState.PENDING
    assert client.get("taken").command == "echo old"
    # Running the same file again stores nothing twice.
    summary = json_of(cli("enqueue", "--file", "-", "--json", input=lines), "enqueue-file")
    assert (summary["enqueued"], summary["ids"], [s["id"] for s in summary["skipped"]]) == (
        0, [], ["new1", "taken", "new2"])
    assert client.status().states["pending"] == 3


def test_a_large_file_is_enqueued_in_one_go(cli: Cli, client: Client, tmp_path: Path) -> None:
    count = 20_000
    path = tmp_path / "big.jsonl"
    path.write_text("".join(
        f'{{"id":"big-{i}","command":"echo {i}","queue":"q{i % 3}"}}\n' for i in range(count)
    ))
    started = time.perf_counter()
    result = cli("enqueue", "--file", str(path), timeout=110)
    elapsed = time.perf_counter() - started
    print(f"\n[e2e] enqueued {count} jobs from a file in {elapsed:.2f}s")
    # stderr is not a terminal here: no progress counter may be mixed into it.
    assert assert_ok(result) == f"enqueued {count} jobs\n"
    status = client.status()
    assert status.states["pending"] == count
    assert {q.name: q.pending for q in status.queues if q.pending} == {
        "q0": 6667, "q1": 6667, "q2": 6666}
    assert client.get("big-19999").command == "echo 19999"


def test_progress_counter_only_on_a_terminal(env: dict[str, str], client: Client,
                                             tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl"
    path.write_text('{"command":"true"}\n' * 6000)
    main, tty = os.openpty()
    try:
        proc = subprocess.run([QUEUECTL, "enqueue", "--file", str(path)], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=tty,
                              timeout=60, check=False)
        os.close(tty)
        tty = -1
        seen = b""
        with contextlib.suppress(OSError):  # EIO once everything written has been read
            while chunk := os.read(main, 4096):
                seen += chunk
    finally:
        if tty >= 0:
            os.close(tty)
        os.close(main)
    assert (proc.returncode, proc.stdout) == (0, b"enqueued 6000 jobs\n")
    assert b"\renqueued 5000/6000" in seen and b"\renqueued 6000/6000" in seen
    assert seen.endswith(b"\r\x1b[K")  # the counter is wiped when done
    assert client.status().states["pending"] == 6000


# -- a refused command changes nothing: every value checked before Redis is touched ---------------
def stored_keys(client: Client) -> list[bytes]:
    return list(client.redis.scan_iter(match=f"{client.keys.prefix}:*"))


@pytest.mark.parametrize(("args", "fragment"), [
    (["--run-at", "9999-12-31T23:59:59-05:00"], "more than ten years ahead"),
    (["--run-at", "0001-01-01T00:00:00+05:00"], "before 1970-01-01T00:00:00Z"),
    (["--run-at", "1969-12-31T23:59:59Z"], "before 1970"),
    (["--run-at", f"{datetime.now(UTC).year + 11}-01-01T00:00:00Z"], "ten years ahead"),
    (["--delay", "3651d"], "longer than ten years"),
    (["--timeout", "0.0001"], "invalid timeout"),
    (["--env", "NOEQUALS"], "invalid --env 'NOEQUALS': use NAME=VALUE"),
    (["--env", "=1"], "use NAME=VALUE"),
    (["--env", "A=1", "--env", "A=2"], "A is given twice"),
    (["--env", "1A=x"], "is not a variable name"),
    (["--env", "QUEUECTL_REDIS_URL=redis://evil"], "reserved"),
    (["--env", "A=x\x1b[2J"], None),
])
def test_refused_flags_leave_redis_untouched(cli: Cli, client: Client, args: list[str],
                                             fragment: str | None) -> None:
    result = cli("enqueue", *args, "--", "true")
    if fragment is None:  # a value with an escape sequence is fine for a job's env
        assert_ok(result)
        return
    line = assert_error(result, 3, fragment)
    assert "\x1b" not in line
    assert stored_keys(client) == []


@pytest.mark.parametrize(("job", "fragment"), [
    ('{"command":"true","run_at":"9999-12-31T23:59:59-05:00"}', "ten years ahead"),
    ('{"command":"true","run_at":99999999999}', "ten years ahead"),
    ('{"command":"true","run_at":-5}', "before 1970"),
    ('{"command":"true","max_retries":true}', "invalid max_retries"),
    ('{"command":"true","max_retries":"3"}', "invalid max_retries"),
    ('{"command":"true","timeout":1e-300}', "invalid timeout"),
    ('{"command":"true","timeout":NaN}', "NaN is not a JSON number"),
    ('{"command":"true","id":"a","id":"b"}', "duplicate key 'id'"),
    ('{"command":"true","max_retries":' + "1" * 5000 + "}", "a number longer than"),
    ('{"command":"true","env":' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    ('[' * 50_000 + ']' * 50_000, "nested too deeply"),
])
def test_strict_json_is_invalid_input(cli: Cli, client: Client, job: str, fragment: str) -> None:
    assert_error(cli("enqueue", job), 3, fragment)
    assert_error(cli("enqueue", "--file", "-", input=f'{{"command":"ok"}}\n{job}\n'), 3,
                 "line 2: ", fragment)
    assert stored_keys(client) == []


def test_a_numeric_run_at_is_epoch_seconds(cli: Cli, client: Client) -> None:
    at = int(datetime(NEXT_YEAR, 6, 1, tzinfo=UTC).timestamp())
    assert_ok(cli("enqueue", f'{{"id":"n","command":"true","run_at":{at}}}'))
    assert client.get("n").run_at == at


def test_env_flags_reach_the_record(cli: Cli, client: Client) -> None:
    out = assert_ok(cli("enqueue", "--id", "e", "--env", "REGION=eu-west-1", "-e", "EMPTY=",
                        "--env", "EQ=a=b", "--", "./report.sh"))
    assert out == "e pending\n"
    assert client.get("e").env == {"REGION": "eu-west-1", "EMPTY": "", "EQ": "a=b"}
    assert "REGION=eu-west-1" in assert_ok(cli("show", "e"))
    assert_error(cli("enqueue", "--env", "A=1", '{"command":"true"}'), 2, "--env cannot be "
                 "combined with a JSON job")
    assert_error(cli("enqueue", "--env", "A=1", "--file", "-", input=""), 2, "--file cannot be "
                 "combined with --env")


def test_an_over_long_line_is_refused_by_its_length(client: Client, env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """A 50 MB line is refused after reading about 1 MiB of it, never parsed or held."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.write(b'{"command":"ok"}\n{"command":"')
        for _ in range(50):
            f.write(b"x" * 1024 * 1024)
        f.write(b'"}\n')
    for args in (["enqueue", "--file", "-"], ["enqueue", "--file", str(path)]):
        result, peak_kib = run_measured(env, args, path)
        assert_error(result, 3, "line 2: longer than 1048576 bytes, more than any job needs")
        # The CLI itself takes about 50 MiB; the line alone would add 50 MiB, and parsing
        # it as a whole (before) took the process to 300 MiB.
        assert peak_kib < 100 * 1024, peak_kib
    assert stored_keys(client) == []
