"""Validation errors in QueueCTL's words: "must be at least 1", not "Input should be ...".

Settings, job fields and command-line values are all checked by pydantic; its
messages name Python types ("a valid integer", "a valid dictionary"). Each
error type a user can cause is said here once, in plain words, from the
limits pydantic reports in the error's ``ctx``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from queuectl.core.display import escape


def number(value: object) -> str:
    """``3`` for 3.0, ``0.001`` for 0.001: a limit as a person writes it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _chars(limit: object) -> str:
    return f"{limit} character{'' if limit == 1 else 's'}"


_Render = Callable[[Mapping[str, Any]], str]
PLAIN: dict[str, _Render] = {
    "greater_than_equal": lambda c: f"must be at least {number(c['ge'])}",
    "greater_than": lambda c: f"must be more than {number(c['gt'])}",
    "less_than_equal": lambda c: f"must be at most {number(c['le'])}",
    "less_than": lambda c: f"must be less than {number(c['lt'])}",
    "int_type": lambda _: "must be a whole number",
    "int_parsing": lambda _: "must be a whole number",
    "int_from_float": lambda _: "must be a whole number",
    "float_type": lambda _: "must be a number",
    "float_parsing": lambda _: "must be a number",
    "finite_number": lambda _: "must be a finite number (not inf or nan)",
    "bool_type": lambda _: "must be true or false",
    "bool_parsing": lambda _: "must be true or false",
    "string_type": lambda _: "must be text",
    "string_unicode": lambda _: "must be valid UTF-8 text",
    "string_too_short": lambda c: ("must not be empty" if c["min_length"] == 1
                                   else f"must be at least {_chars(c['min_length'])}"),
    "string_too_long": lambda c: f"must be at most {_chars(c['max_length'])}",
    "enum": lambda c: f"must be {c['expected']}",
    "literal_error": lambda c: f"must be {c['expected']}",
    "dict_type": lambda _: "must be an object of names and values",
    "list_type": lambda _: "must be a list",
    "datetime_type": lambda _: "must be a time",
    "missing": lambda _: "is required",
    "extra_forbidden": lambda _: "is not a known field",
}


_STRICT_TYPES = frozenset({"int_type", "float_type", "bool_type"})


def plain(error: ErrorDetails) -> str:
    """One error's message in plain words (a validator's own message is kept as written)."""
    render = PLAIN.get(error["type"])
    if render is not None:
        try:
            text = render(error.get("ctx", {}))
        except KeyError:
            pass  # a pydantic version with other ctx names: its own words are better than none
        else:
            if error["type"] in _STRICT_TYPES and isinstance(error.get("input"), str):
                # A job's JSON is strict: "3" is text that looks like a number.
                text += " (not text in quotes)"
            return text
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return escape(message)


def first(exc: ValidationError) -> tuple[str, str]:
    """The first problem of ``exc``: (where, as ``a.b``; what is wrong, in plain words)."""
    error = exc.errors()[0]
    return ".".join(str(part) for part in error["loc"]), plain(error)
