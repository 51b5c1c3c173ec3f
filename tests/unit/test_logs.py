"""Service log lines, text and JSON: one line each, job fields on every line about a job,
nothing from outside that can forge a line or reach the terminal (no Redis)."""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from queuectl.core.logs import (
    JobFieldsFilter,
    JsonFormatter,
    OneLineFormatter,
    bind_job,
    job_extra,
    unbind_job,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def record(message: str, *args: object, extra: dict[str, object] | None = None,
           exc: bool = False) -> logging.LogRecord:
    """A record as logging makes it, passed through the handler's filter."""
    logger = logging.getLogger("queuectl.worker")
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nline two")
        except ValueError:
            exc_info = sys.exc_info()
    made = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, args, exc_info,
                             extra=extra)
    assert JobFieldsFilter().filter(made)
    return made


def text(made: logging.LogRecord) -> str:
    return OneLineFormatter("%(levelname)s worker %(message)s").format(made)


def as_json(made: logging.LogRecord) -> dict[str, object]:
    line = JsonFormatter("queuectl-worker").format(made)
    assert "\n" not in line
    doc = json.loads(line)
    assert isinstance(doc, dict)
    return doc


def test_a_job_line_carries_its_fields_in_both_forms() -> None:
    token = bind_job({"job_id": "flaky", "queue": "default", "attempt": 2, "trace_id": TRACE,
                      "span_id": "00f067aa0ba902b7"})
    try:
        made = record("job %s failed (%s); retry in %.1fs", "flaky", "exit code 1", 2.0)
    finally:
        unbind_job(token)
    assert text(made) == (f"WARNING worker job flaky failed (exit code 1); retry in 2.0s "
                          f"[job=flaky queue=default attempt=2 trace={TRACE}]")
    doc = as_json(made)
    assert isinstance(doc.pop("time"), str)
    assert doc == {"level": "WARNING", "service": "queuectl-worker", "logger": "queuectl.worker",
                   "message": "job flaky failed (exit code 1); retry in 2.0s",
                   "job_id": "flaky", "queue": "default", "attempt": 2, "trace_id": TRACE,
                   "span_id": "00f067aa0ba902b7"}


def test_json_time_is_iso_utc_with_milliseconds() -> None:
    made = record("x")
    made.created = 1767225600.25
    assert as_json(made)["time"] == "2026-01-01T00:00:00.250Z"


def test_fields_are_bound_to_the_thread_that_runs_the_job() -> None:
    token = bind_job(job_extra("mine", "default", 1, TRACE))
    other: list[logging.LogRecord] = []
    try:
        thread = threading.Thread(target=lambda: other.append(record("elsewhere")))
        thread.start()
        thread.join()
        here = record("here")
    finally:
        unbind_job(token)
    assert as_json(here)["job_id"] == "mine"
    assert "job_id" not in as_json(other[0])
    assert "job_id" not in as_json(record("after"))


def test_extra_wins_over_the_bound_fields_and_none_is_left_out() -> None:
    token = bind_job({"job_id": "bound", "queue": "q", "attempt": 1, "trace_id": None})
    try:
        made = record("m", extra=job_extra("given", "q2"))
    finally:
        unbind_job(token)
    doc = as_json(made)
    assert (doc["job_id"], doc["queue"], doc["attempt"]) == ("given", "q2", 1)
    assert "trace_id" not in doc
    assert text(made).endswith("[job=given queue=q2 attempt=1]")


def test_a_line_about_no_job_has_no_brackets() -> None:
    assert text(record("worker %s started", "w1")) == "WARNING worker worker w1 started"


@pytest.mark.parametrize("hostile", [
    "a\nWARNING worker forged", "\x1b[2J", "\u202egnp.exe", "\x85next", "\x7f", "\udcff",
    "\u2028", "\ufeff", "\u200b",
])
def test_outside_text_cannot_break_a_line_or_reach_the_terminal(hostile: str) -> None:
    made = record("job %s: %s", "j", hostile, extra=job_extra("j", hostile))
    for line in (text(made), JsonFormatter("queuectl-worker").format(made)):
        assert "\n" not in line and "\r" not in line
        assert all(ch.isprintable() or ch == " " for ch in line), repr(line)
    doc = as_json(made)
    assert doc["message"] == f"job j: {hostile}"  # JSON stays exact
    assert doc["queue"] == hostile


def test_an_exception_stays_on_the_line() -> None:
    made = record("failed", exc=True)
    line = text(made)
    assert "\n" not in line and "ValueError: boom\\nline two" in line
    doc = as_json(record("failed", exc=True))
    assert isinstance(doc["exception"], str) and "ValueError: boom\nline two" in doc["exception"]


class Odd:
    def __str__(self) -> str:
        return "odd"


def test_a_value_json_cannot_encode_is_written_as_text() -> None:
    assert as_json(record("m", extra={"thing": Odd()}))["thing"] == "odd"
