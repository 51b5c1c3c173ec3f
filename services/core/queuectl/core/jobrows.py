"""A decoded JSON job straight to its stored form (``enqueueing.Row``), cheaply when it can be.

``enqueue --file`` validates every line before it stores any; building a JobSpec costs
more than the rest of a line's work together. The usual line (a command, perhaps an id,
a queue and max_retries) is checked here by the very rules JobSpec applies; anything
else, and anything these checks do not accept, goes through JobSpec, so a job accepted
here is one JobSpec accepts, and a bad one gets JobSpec's error word for word.
tests/unit/test_jobrows.py holds the two paths equal.
"""

from __future__ import annotations

from queuectl.core.enqueueing import Row, row_of
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.models import (
    MAX_COMMAND_BYTES,
    MAX_RETRIES,
    new_job_id,
    spec_from_mapping,
    valid_name,
)

# The fields the cheap path knows; a job with any other goes through JobSpec.
_SIMPLE = frozenset({"id", "command", "queue", "max_retries"})
_GENERATE = object()  # no id given: one is generated
_DEFAULT = object()  # no queue given: the default one


def _command_ok(value: object) -> bool:
    """JobSpec's checks of a command (a str, not blank, no NUL, at most MAX_COMMAND_BYTES
    of UTF-8), answered without raising."""
    if type(value) is not str or not value.strip() or "\x00" in value:
        return False
    if value.isascii():
        return len(value) <= MAX_COMMAND_BYTES
    try:
        return len(value.encode("utf-8")) <= MAX_COMMAND_BYTES
    except UnicodeEncodeError:  # a lone surrogate: JobSpec refuses it in its own words
        return False


def _simple_row(data: dict[str, object]) -> Row | None:
    """The row of a job of only simple fields that JobSpec would accept, else None."""
    if not data.keys() <= _SIMPLE:
        return None
    command = data.get("command")
    if not _command_ok(command):
        return None
    # An id or queue that is given must be a name (null is not); max_retries may be null.
    job_id = data.get("id", _GENERATE)
    queue = data.get("queue", _DEFAULT)
    retries = data.get("max_retries")
    if (job_id is not _GENERATE and (type(job_id) is not str or not valid_name(job_id))) or (
            queue is not _DEFAULT and (type(queue) is not str or not valid_name(queue))) or (
            retries is not None and (type(retries) is not int or not 0 <= retries <= MAX_RETRIES)):
        return None
    if queue is _DEFAULT:
        queue = DEFAULT_QUEUE
    return (new_job_id() if job_id is _GENERATE else str(job_id), str(queue), str(command),
            "" if retries is None else str(retries), "", "", "")


def row_from_mapping(data: object) -> Row:
    """The stored form of one decoded JSON job; InvalidInputError as ``spec_from_mapping``."""
    if type(data) is dict:
        row = _simple_row(data)
        if row is not None:
            return row
    return row_of(spec_from_mapping(data))
