"""JobSpec validation: ids, fields, the JSON form and commands (no Redis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from queuectl.core.errors import InvalidInputError
from queuectl.core.models import (
    MAX_COMMAND_BYTES,
    JobSpec,
    check_delay,
    check_job_id,
    spec_from_json,
    spec_from_mapping,
    spec_from_options,
)

ID_ERROR = "invalid id: use 1-128 characters of A-Z a-z 0-9 . _ -"


@pytest.mark.parametrize("job_id", [
    "a", "Z", "0", "job1", "job-1", "job_1", "job.1", "...", "-", "_", "a" * 128,
    "ABCxyz0189._-", "2026-11-28T10.00",
])
def test_valid_ids_are_accepted(job_id: str) -> None:
    assert spec_from_mapping({"id": job_id, "command": "true"}).id == job_id
    assert check_job_id(job_id) == job_id


@pytest.mark.parametrize("job_id", [
    "", "a" * 129, "a b", " a", "a ", "a\n", "\na", "a\t", "café", "ジョブ", "١٢٣", "a/b", "../x",
    "a:b", "a*", "{a}", "a\x00", "a,b", "a@b", "a+b", "a\\b",
])
def test_invalid_ids_are_rejected(job_id: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_mapping({"id": job_id, "command": "true"})
    assert str(caught.value) == ID_ERROR
    with pytest.raises(InvalidInputError, match="invalid id"):
        check_job_id(job_id)


def test_id_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match=r"^invalid id: "):
        spec_from_mapping({"id": 12, "command": "true"})


def test_generated_ids_are_valid_and_distinct() -> None:
    a, b = JobSpec(command="true"), JobSpec(command="true")
    assert a.id != b.id
    assert check_job_id(a.id) == a.id


def test_the_notes_json_form() -> None:
    spec = spec_from_json('{"id":"job1","command":"sleep 2","max_retries":3}')
    assert (spec.id, spec.command, spec.max_retries, spec.queue) == ("job1", "sleep 2", 3,
                                                                     "default")
    assert spec.timeout is None and spec.run_at is None


@pytest.mark.parametrize("field", ["state", "attempts", "foo", "created_at", "worker"])
def test_unknown_or_system_fields_are_an_error(field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_json(json.dumps({"command": "true", field: 1}))
    assert str(caught.value) == f"unknown field {field!r}"


def test_missing_command() -> None:
    with pytest.raises(InvalidInputError, match=r"^missing field 'command'$"):
        spec_from_json('{"id": "x"}')


@pytest.mark.parametrize(("text", "kind"), [
    ('["echo", "hi"]', "an array"),
    ("[]", "an array"),
    ('"echo hi"', "a string"),
    ("42", "a number"),
    ("4.2", "a number"),
    ("true", "a boolean"),
    ("null", "null"),
])
def test_json_that_is_not_an_object_is_refused(text: str, kind: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_json(text)
    assert str(caught.value) == f"a job must be a JSON object, not {kind}"


@pytest.mark.parametrize("text", ["{", "{'command': 'x'}", "", "echo hi", '{"command": "x",}'])
def test_invalid_json(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^invalid JSON: .* at column \d+$"):
        spec_from_json(text)


@pytest.mark.parametrize(("command", "message"), [
    ("echo a\x00b", "invalid command: command contains a NUL byte"),
    ("", "invalid command: must not be empty"),
    ("   \n\t", "invalid command: command is empty"),
    ("x" * (MAX_COMMAND_BYTES + 1), f"invalid command: command is longer than "
                                    f"{MAX_COMMAND_BYTES} bytes"),
])
def test_bad_commands_are_refused(command: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_mapping({"command": command})
    assert str(caught.value) == message


def test_command_is_kept_verbatim() -> None:
    command = "printf '%s\\n' \"héllo\" | tr a-z A-Z; exit 3"
    assert spec_from_mapping({"command": command}).command == command


@pytest.mark.parametrize(("fields", "field"), [
    ({"max_retries": -1}, "max_retries"),
    ({"max_retries": 1001}, "max_retries"),
    ({"max_retries": 1.5}, "max_retries"),
    ({"max_retries": "three"}, "max_retries"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": -5}, "timeout"),
    ({"run_at": "tomorrow"}, "run_at"),
    ({"queue": "a b"}, "queue"),
    ({"queue": ""}, "queue"),
])
def test_field_values_are_validated(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_mapping({"command": "true", **fields})
    message = str(caught.value)
    assert message.startswith(f"invalid {field}"), message
    assert "\n" not in message


def test_run_at_forms() -> None:
    aware = spec_from_mapping({"command": "true", "run_at": "2026-12-01T10:00:00Z"})
    assert aware.run_at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    offset = spec_from_mapping({"command": "true", "run_at": "2026-12-01T12:00:00+02:00"})
    assert offset.run_at == aware.run_at  # converted to UTC
    assert offset.run_at is not None and offset.run_at.utcoffset() == timedelta(0)
    naive = spec_from_mapping({"command": "true", "run_at": "2026-12-01T10:00:00"})
    assert naive.run_at == datetime(2026, 12, 1, 10, tzinfo=UTC)  # naive means UTC
    assert naive.run_at is not None and naive.run_at.utcoffset() == timedelta(0)


def test_spec_is_frozen() -> None:
    spec = JobSpec(command="true")
    with pytest.raises(ValueError, match="frozen"):
        spec.command = "false"  # type: ignore[misc]


# -- strictness: what the JSON says is what the job gets, or it is refused ----------------------
@pytest.mark.parametrize(("text", "message"), [
    ('{"command":"x","max_retries":true}', "invalid max_retries: must be a whole number"),
    ('{"command":"x","max_retries":"3"}', "invalid max_retries: must be a whole number "
                                          "(not text in quotes)"),
    ('{"command":"x","max_retries":3.0}', "invalid max_retries: must be a whole number"),
    ('{"command":"x","timeout":true}', "invalid timeout: must be a number"),
    ('{"command":"x","timeout":"30"}', "invalid timeout: must be a number (not text in quotes)"),
    ('{"command":"x","timeout":1e-300}',
     "invalid timeout: must be at least 0.001"),
    ('{"command":"x","timeout":0.0009}',
     "invalid timeout: must be at least 0.001"),
    ('{"command":"x","timeout":1e999}', "invalid timeout: must be a finite number"),
    ('{"command":"x","id":"a","id":"b"}', "invalid JSON: duplicate key 'id'"),
    ('{"command":"x","command":"rm -rf /"}', "invalid JSON: duplicate key 'command'"),
    ('{"command":"x","env":{"A":"1","A":"2"}}', "invalid JSON: duplicate key 'A'"),
    ('{"command":"x","timeout":NaN}', "invalid JSON: NaN is not a JSON number"),
    ('{"command":"x","timeout":Infinity}', "invalid JSON: Infinity is not a JSON number"),
    ('{"command":"x","max_retries":-Infinity}', "invalid JSON: -Infinity is not a JSON number"),
    ('{"command":"x","max_retries":' + "9" * 5000 + "}",
     "invalid JSON: a number longer than 40 digits"),
    ('{"command":"x","run_at":true}', "invalid run_at: Value error, use ISO 8601 text"),
    ('{"command":"x","run_at":"1700000000"}', "invalid run_at: use ISO 8601"),
    ('{"command":"x","run_at":-1}', "invalid run_at: before 1970-01-01T00:00:00Z"),
    ('{"command":"x","run_at":"1969-12-31T23:59:59Z"}', "invalid run_at: before 1970"),
    ('{"command":"x","run_at":"0001-01-01T00:00:00+05:00"}', "invalid run_at: before 1970"),
    ('{"command":"x","run_at":"9999-12-31T23:59:59-05:00"}',
     "invalid run_at: more than ten years ahead"),
    ('{"command":"x","run_at":99999999999}', "invalid run_at: more than ten years ahead"),
    ('{"command":"x","run_at":1e300}', "invalid run_at: more than ten years ahead"),
    ('{"command":"x","env":{"A":1}}', "invalid env.A: must be text"),
    ('{"command":"x","env":["A=1"]}', "invalid env: must be an object of names and values"),
    ('{"command":"x","env":{"QUEUECTL_REDIS_URL":"r"}}', "invalid env: QUEUECTL_REDIS_URL is "
                                                         "reserved"),
    # Lone surrogates (bytes that were not UTF-8) cannot be sent to Redis.
    ('{"command":"echo \\ud800"}', "invalid command: must be valid UTF-8 text"),
    ('{"command":"x","env":{"A":"\\udcff"}}', "invalid env: A is not valid UTF-8 text"),
])
def test_json_is_read_strictly(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_json(text)
    assert str(caught.value).replace("Value error, ", "").startswith(
        message.replace("Value error, ", "")), str(caught.value)


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_deep_nesting_is_invalid_input(depth: int) -> None:
    with pytest.raises(InvalidInputError, match=r"^invalid JSON: nested too deeply$"):
        spec_from_json('{"command":"x","env":' + "[" * depth + "]" * depth + "}")
    with pytest.raises(InvalidInputError, match=r"^invalid JSON: nested too deeply$"):
        spec_from_json("[" * depth + "]" * depth)


def test_an_over_long_document_is_refused_by_its_length() -> None:
    text = '{"command":"' + "x" * (2 * 1024 * 1024) + '"}'
    with pytest.raises(InvalidInputError, match=r"^invalid JSON: longer than 1048576"):
        spec_from_json(text)


def test_a_numeric_run_at_is_epoch_seconds() -> None:
    spec = spec_from_json('{"command":"x","run_at":1900000000}')
    assert spec.run_at == datetime(2030, 3, 17, 17, 46, 40, tzinfo=UTC)
    fraction = spec_from_json('{"command":"x","run_at":1900000000.25}')
    assert fraction.run_at is not None and fraction.run_at.timestamp() == 1900000000.25


def test_a_timeout_of_a_millisecond_and_an_int_are_fine() -> None:
    assert spec_from_json('{"command":"x","timeout":0.001}').timeout == 0.001
    assert spec_from_json('{"command":"x","timeout":30}').timeout == 30.0


def test_env_is_kept() -> None:
    spec = spec_from_json('{"command":"x","env":{"REGION":"eu","EMPTY":""}}')
    assert spec.env == {"REGION": "eu", "EMPTY": ""}
    assert spec.env_json() == '{"REGION":"eu","EMPTY":""}'


@pytest.mark.parametrize(("options", "message"), [
    ({"delay": float("inf")}, "invalid delay"),
    ({"delay": float("nan")}, "invalid delay"),
    ({"delay": -1}, "invalid delay"),
    ({"delay": 1e300}, "invalid delay"),
    ({"delay": 5, "run_at": datetime(2030, 1, 1, tzinfo=UTC)}, "not both"),
    ({"run_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=5)))},
     "invalid run_at: more than ten years ahead"),
    ({"run_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
     "invalid run_at: before 1970"),
    ({"max_retries": True}, "invalid max_retries"),
    ({"timeout": 1e-300}, "invalid timeout"),
])
def test_options_are_checked_like_json(options: dict[str, Any], message: str) -> None:
    delay = options.pop("delay", None)
    with pytest.raises(InvalidInputError, match=message):
        check_delay(delay, options.get("run_at"))
        spec_from_options("true", **options)


def test_a_delay_stays_a_delay() -> None:
    """The script adds a delay to Redis's clock: the job carries no run_at of the caller's."""
    assert check_delay(60) == 60.0
    assert check_delay(None) is None
    assert spec_from_options("true").run_at is None


def test_generated_ids_are_32_hex_digits_and_differ_across_fork() -> None:
    import os

    from queuectl.core.models import new_job_id

    ids = [new_job_id() for _ in range(2000)]  # more than one block of random bytes
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next id must not be the parent's next one
        os.write(write, new_job_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert len(child) == 32 and child != new_job_id()
