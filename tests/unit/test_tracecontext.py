"""The W3C trace context in a job record: what is continued, what is ignored (no Redis)."""

from __future__ import annotations

import pytest

from queuectl.core.tracecontext import (
    Carrier,
    env_context,
    parse_traceparent,
    read_context,
    trace_id_of,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("value", [
    VALID,
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",  # not sampled
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",  # random trace id flag
])
def test_valid_traceparents_are_kept_as_they_are(value: str) -> None:
    assert parse_traceparent(value) == value


def test_a_later_version_is_read_from_its_first_55_characters() -> None:
    later = "cc" + VALID[2:]
    assert parse_traceparent(later + "-what-comes-next") == later
    assert parse_traceparent(later + "x") is None  # a field must start with "-"


@pytest.mark.parametrize("value", [
    "", "garbage", VALID + "-extra",  # version 00 has exactly four fields
    "ff" + VALID[2:],  # version ff is forbidden
    VALID.upper(), " " + VALID, VALID[:-1],
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
    "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
    "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
    "\x1b[31m" + VALID,
])
def test_anything_else_is_no_traceparent(value: str) -> None:
    assert parse_traceparent(value) is None


def test_the_record_form_round_trips_with_and_without_tracestate() -> None:
    plain, stated = Carrier(VALID), Carrier(VALID, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert plain.stored() == VALID
    assert read_context(plain.stored()) == plain
    assert read_context(stated.stored()) == stated
    assert stated.env() == {"TRACEPARENT": VALID,
                            "TRACESTATE": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}
    assert plain.env() == {"TRACEPARENT": VALID}
    assert (plain.trace_id, plain.span_id) == ("4bf92f3577b34da6a3ce929d0e0e4736",
                                               "00f067aa0ba902b7")


@pytest.mark.parametrize("stored", [None, "", "x", "00-" + "a" * 60, "not a traceparent " + VALID,
                                    "\udcff" * 10])
def test_a_bad_record_value_is_ignored(stored: str | None) -> None:
    assert read_context(stored) is None
    assert trace_id_of(stored) is None


def test_trace_id_of_a_stored_context() -> None:
    assert trace_id_of(f"{VALID} vendor=x") == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_environment_carriers() -> None:
    assert env_context({"TRACEPARENT": f" {VALID}\n", "TRACESTATE": "a=1 "}) == Carrier(VALID,
                                                                                     "a=1")
    assert env_context({"TRACEPARENT": "nope", "TRACESTATE": "a=1"}) is None
    assert env_context({}) is None
