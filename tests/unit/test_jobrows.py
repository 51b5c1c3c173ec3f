"""The cheap path from a decoded JSON job to its row agrees with JobSpec, job for job."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queuectl.core.enqueueing import row_of
from queuectl.core.errors import InvalidInputError
from queuectl.core.jobrows import row_from_mapping
from queuectl.core.models import MAX_COMMAND_BYTES, spec_from_mapping

# Jobs with ids (a generated id differs by nature): the cheap path takes most of these,
# JobSpec the rest; every one must come out as JobSpec makes it, or fail with its words.
CASES: list[object] = [
    {"id": "a", "command": "true"},
    {"id": "a.b_c-1", "command": "echo ü", "queue": "q-1", "max_retries": 0},
    {"id": "a", "command": "true", "max_retries": 1000},
    {"id": "a", "command": "true", "max_retries": None},
    {"id": "a", "command": " x ", "queue": "default"},
    {"id": "a", "command": "x" * MAX_COMMAND_BYTES},
    {"id": "a", "command": "ü" * (MAX_COMMAND_BYTES // 2)},
    {"id": "a", "command": "true", "timeout": 2, "env": {"A": "b"}},  # JobSpec's own fields
    # Each of these JobSpec refuses; the cheap path must not accept it.
    {"id": "a", "command": "x" * (MAX_COMMAND_BYTES + 1)},
    {"id": "a", "command": "ü" * (MAX_COMMAND_BYTES // 2 + 1)},
    {"id": "a", "command": "bad \ud800 surrogate"},
    {"id": "a", "command": "   "},
    {"id": "a", "command": ""},
    {"id": "a", "command": "a\x00b"},
    {"id": "a", "command": 5},
    {"id": "a", "command": None},
    {"id": "a"},
    {"id": None, "command": "true"},
    {"id": "", "command": "true"},
    {"id": "a b", "command": "true"},
    {"id": "a\n", "command": "true"},
    {"id": "x" * 129, "command": "true"},
    {"id": 7, "command": "true"},
    {"id": "a", "command": "true", "queue": None},
    {"id": "a", "command": "true", "queue": "no/slash"},
    {"id": "a", "command": "true", "max_retries": True},
    {"id": "a", "command": "true", "max_retries": -1},
    {"id": "a", "command": "true", "max_retries": 1001},
    {"id": "a", "command": "true", "max_retries": 1.0},
    {"id": "a", "command": "true", "max_retries": "3"},
    {"id": "a", "command": "true", "surprise": 1},
    ["not", "an", "object"],
    "true",
    None,
]


def slow(data: object) -> tuple[object, str | None]:
    try:
        return row_of(spec_from_mapping(data)), None
    except InvalidInputError as exc:
        return None, str(exc)


def fast(data: object) -> tuple[object, str | None]:
    try:
        return row_from_mapping(data), None
    except InvalidInputError as exc:
        return None, str(exc)


@pytest.mark.parametrize("data", CASES)
def test_the_cheap_path_answers_as_jobspec_does(data: object) -> None:
    assert fast(data) == slow(data)


def test_a_job_without_an_id_gets_a_new_one_each_time() -> None:
    first = row_from_mapping({"command": "true"})
    second = row_from_mapping({"command": "true"})
    assert first[1:] == second[1:] == ("default", "true", "", "", "", "")
    assert first[0] != second[0]
    assert len(first[0]) == 32 and int(first[0], 16) >= 0


# Each field drawn from values at the edges its rules draw (names, lengths, the retry
# range, blank, NUL-bearing and surrogate strings, the wrong JSON types), or anything.
ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                st.text(max_size=8), st.lists(st.none(), max_size=1))
COMMANDS = st.sampled_from(["true", "echo ü", " x ", " ", "", "a\x00b", "bad \ud800",
                            "x" * MAX_COMMAND_BYTES, "x" * (MAX_COMMAND_BYTES + 1),
                            "ü" * (MAX_COMMAND_BYTES // 2 + 1)]) | ANY
NAMES = st.sampled_from(["a", "q-1", "a.b_c", "default", "", "a b", "a\n", "no/slash",
                         "x" * 128, "x" * 129]) | ANY
RETRIES = st.sampled_from([None, 0, 3, 1000, 1001, -1, True, False, 1.0, "3"]) | ANY
VALID = {"id": "a", "command": "true", "queue": "q", "max_retries": 3}
# One field varied while the others stay valid (where a wrong answer would show), and
# jobs whose every field is drawn.
JOBS = st.one_of(
    *(st.builds(lambda v, f=field: {**VALID, f: v}, values)
      for field, values in (("command", COMMANDS), ("id", NAMES), ("queue", NAMES),
                            ("max_retries", RETRIES), ("timeout", ANY))),
    st.fixed_dictionaries({"id": NAMES, "command": COMMANDS}, optional={
        "queue": NAMES, "max_retries": RETRIES, "timeout": ANY}))


@settings(max_examples=500, deadline=None)
@given(JOBS)
def test_generated_jobs_come_out_as_jobspec_makes_them(data: dict[str, object]) -> None:
    assert fast(data) == slow(data)
