"""The W3C trace context a job carries in its record's ``trace_context`` field.

The field holds the traceparent of the job's ``send`` span, then a space and its
tracestate when it has one. Whatever else a record holds there is ignored, never an
error: a record is anyone's to write. Pure parsing, no OpenTelemetry import: the CLI
prints trace ids and the worker passes ``TRACEPARENT`` on with tracing off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

# Compiled at first use (re's cache), and no dataclass here: every CLI command imports this
# module, and its start-up time must not grow while tracing is off.
_TRACEPARENT = r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})"
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


class Carrier:
    """A W3C trace context: a valid traceparent and the tracestate that goes with it."""

    __slots__ = ("traceparent", "tracestate")

    def __init__(self, traceparent: str, tracestate: str = "") -> None:
        self.traceparent = traceparent
        self.tracestate = tracestate

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Carrier) and self.traceparent == other.traceparent
                and self.tracestate == other.tracestate)

    def __hash__(self) -> int:
        return hash((self.traceparent, self.tracestate))

    def __repr__(self) -> str:
        return f"Carrier({self.traceparent!r}, {self.tracestate!r})"

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    @property
    def span_id(self) -> str:
        return self.traceparent[36:52]

    def stored(self) -> str:
        """The form kept in the job record's ``trace_context`` field."""
        return f"{self.traceparent} {self.tracestate}" if self.tracestate else self.traceparent

    def env(self) -> dict[str, str]:
        """``TRACEPARENT`` and ``TRACESTATE``, the environment carriers of OpenTelemetry."""
        out = {"TRACEPARENT": self.traceparent}
        if self.tracestate:
            out["TRACESTATE"] = self.tracestate
        return out


def parse_traceparent(value: str) -> str | None:
    """``value`` if it is a W3C traceparent QueueCTL can continue, else None.

    Version 00 is exactly 55 characters; a later version may append fields, which are
    dropped (the spec: read the first 55 characters). ``ff`` and all-zero ids are
    invalid.
    """
    head = value[:55]
    match = re.fullmatch(_TRACEPARENT, head)
    if match is None or match.group(1) == "ff":
        return None
    if len(value) > 55 and (match.group(1) == "00" or value[55] != "-"):
        return None
    if match.group(2) == _ZERO_TRACE or match.group(3) == _ZERO_SPAN:
        return None
    return head


def read_context(stored: str | None) -> Carrier | None:
    """The carrier of a record's ``trace_context``; None for "" and for anything invalid."""
    if not stored:
        return None
    traceparent, _, tracestate = stored.partition(" ")
    valid = parse_traceparent(traceparent)
    return Carrier(valid, tracestate.strip()) if valid else None


def env_context(environ: Mapping[str, str]) -> Carrier | None:
    """The context a parent process handed down in ``TRACEPARENT`` / ``TRACESTATE``."""
    valid = parse_traceparent(environ.get("TRACEPARENT", "").strip())
    return Carrier(valid, environ.get("TRACESTATE", "").strip()) if valid else None


def trace_id_of(stored: str | None) -> str | None:
    """The trace id of a record's ``trace_context``, None when it holds none."""
    carrier = read_context(stored)
    return carrier.trace_id if carrier else None


def carrier_of(context: SpanContext) -> Carrier:
    """The carrier of a span's context (always version 00)."""
    parent = f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    return Carrier(parent, context.trace_state.to_header())
