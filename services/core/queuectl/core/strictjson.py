"""JSON as jobs are written in it: standard JSON only, no duplicate keys, bounded size.

Python's ``json`` module is lenient where a job queue must not be: it reads ``NaN`` and
``Infinity``, lets a repeated key silently win, raises a RecursionError (not a
decoding error) on deep nesting and a ValueError on an integer of thousands of digits.
Each of those is refused here with one line naming the problem.
"""

from __future__ import annotations

import json
from typing import Any

from queuectl.core.errors import InvalidInputError

# The longest valid job written with every character \u-escaped (6 bytes for each byte of
# a 128 KiB command and a 32 KiB env) fits with room to spare; anything longer cannot be
# a job, and is refused by its length before it is parsed (json.loads of a 50 MB
# document peaks at several times its size).
MAX_JOB_JSON_BYTES = 1024 * 1024
# A number no job field can use; Python would spend quadratic time on a longer integer.
MAX_NUMBER_CHARS = 40


class _RefusedError(ValueError):
    """Raised from inside the decoder's hooks; carries the one-line reason."""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RefusedError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise _RefusedError(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _RefusedError(f"a number longer than {MAX_NUMBER_CHARS} digits")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _RefusedError(f"a number longer than {MAX_NUMBER_CHARS} characters")
    return float(text)


# One decoder for every call: json.loads with hooks builds a new one each time, which
# costs as much as decoding a short job.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant,
                            parse_int=_int, parse_float=_float)


def loads(text: str, max_bytes: int = MAX_JOB_JSON_BYTES) -> Any:
    """Decode one JSON document; InvalidInputError (one line) for anything not plain JSON."""
    if len(text) > max_bytes:
        raise InvalidInputError(f"invalid JSON: longer than {max_bytes} characters")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except _RefusedError as exc:
        raise InvalidInputError(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInputError("invalid JSON: nested too deeply") from None
