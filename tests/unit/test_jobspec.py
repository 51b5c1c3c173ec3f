"""JobSpec validation: ids, fields, the JSON form and commands (no Redis)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from queuectl.core.errors import InvalidInputError
from queuectl.core.models import (
    MAX_COMMAND_BYTES,
    JobSpec,
    check_job_id,
    spec_from_json,
    spec_from_mapping,
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
    ("", "invalid command: String should have at least 1 character"),
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
    assert offset.run_at is not None
    assert offset.run_at.timestamp() == aware.run_at.timestamp()
    assert offset.run_at.utcoffset() == timedelta(hours=2)
    naive = spec_from_mapping({"command": "true", "run_at": "2026-12-01T10:00:00"})
    assert naive.run_at == datetime(2026, 12, 1, 10, tzinfo=UTC)  # naive means UTC
    assert naive.run_at is not None and naive.run_at.utcoffset() == timedelta(0)


def test_spec_is_frozen() -> None:
    spec = JobSpec(command="true")
    with pytest.raises(ValueError, match="frozen"):
        spec.command = "false"  # type: ignore[misc]
