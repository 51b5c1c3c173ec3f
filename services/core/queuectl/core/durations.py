"""Human durations for ``--delay`` and ``--timeout``: ``500ms``, ``10s``, ``1m30s``, ``2h``."""

from __future__ import annotations

import math
import re

from queuectl.core.errors import InvalidInputError
from queuectl.core.models import MAX_SCHEDULE_AHEAD

UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Ten years, the bound of every run_at: anything longer is a typo.
MAX_SECONDS = float(MAX_SCHEDULE_AHEAD)

_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)")
_BARE = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_HINT = "use e.g. 500ms, 10s, 1m30s, 2h or a number of seconds"


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a plain number of seconds, or number+unit parts (ms, s, m, h, d)."""
    raw = text.strip().lower()
    if _BARE.fullmatch(raw):
        seconds = float(raw)
    else:
        seconds, pos, seen = 0.0, 0, set()
        for match in _PART.finditer(raw):
            if match.start() != pos or match.group(2) in seen:
                break
            seen.add(match.group(2))
            seconds += float(match.group(1)) * UNITS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise InvalidInputError(f"invalid duration {text!r}: {_HINT}")
    if seconds > MAX_SECONDS:
        raise InvalidInputError(f"invalid duration {text!r}: longer than ten years")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form such as ``1h2m``, ``45s`` or ``300ms`` (for display only)."""
    if not math.isfinite(seconds):
        return "forever" if seconds > 0 else "?"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return "".join(shown)
