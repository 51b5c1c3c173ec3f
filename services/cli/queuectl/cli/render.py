"""Plain-text output: aligned tables, times, and JSON for scripts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from queuectl.core.display import escape
from queuectl.core.durations import format_duration
from queuectl.core.models import iso


def clean(text: str | None, width: int | None = None) -> str:
    """One printable line: control, bidi and invisible characters escaped, cut to ``width``
    with an ellipsis."""
    if text is None:
        return "-"
    out = escape(text)
    if width is not None and len(out) > width:
        out = out[: max(width - 1, 0)] + "…"
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell, two spaces apart, no trailing blanks.

    Every cell is escaped here, so no caller can let a raw id, queue or error through.
    """
    cells = [[escape(str(h)) for h in headers]] + [[escape(str(c)) for c in row]
                                                   for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def pairs(rows: Sequence[tuple[str, str]]) -> str:
    """``name  value`` lines with the names padded to one width (both escaped)."""
    safe = [(escape(name), escape(value)) for name, value in rows]
    width = max((len(name) for name, _ in safe), default=0)
    return "\n".join(f"{name.ljust(width)}  {value}".rstrip() for name, value in safe)


def ago(ts: float | None, now: float | None = None) -> str:
    """``12s ago`` / ``in 3m`` relative to ``now`` (default: this machine's clock)."""
    if ts is None:
        return "-"
    delta = (time.time() if now is None else now) - ts
    if abs(delta) < 0.5:
        return "now"
    return f"{format_duration(delta)} ago" if delta > 0 else f"in {format_duration(-delta)}"


def when(ts: float | None, now: float | None = None) -> str:
    """ISO 8601 UTC followed by the relative time, or ``-``."""
    if ts is None:
        return "-"
    return f"{iso(ts)} ({ago(ts, now)})"


def page_note(shown: int, total: int, what: str, next_cursor: str, *, exact: bool = True,
              cursor: str | None = None) -> str:
    """The stderr line of a page that left rows out: how many of how many, and how to go on."""
    of = f"{total:,}" if exact else f"at most {total:,}"
    since = f" from cursor {cursor}" if cursor else ""
    return (f"showing {shown:,} of {of} {what}{since}; "
            f"for the next page add --cursor {next_cursor}")


def emit_json(value: Any) -> None:
    """Pretty JSON on stdout, one document."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def emit_json_stream(items: Iterable[Any]) -> None:
    """A JSON array written item by item, so that any number of items fits in memory."""
    out = sys.stdout
    first = True
    out.write("[")
    for item in items:
        out.write(("\n  " if first else ",\n  ") + json.dumps(item, indent=2).replace(
            "\n", "\n  "))
        first = False
    out.write("\n]\n" if not first else "]\n")


def emit_json_line(value: Any) -> None:
    """Compact JSON on one line (streams such as ``status --watch --json``)."""
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()
