"""The duration parser behind ``--delay`` and ``--timeout`` (a unit test: no process, no Redis)."""

from __future__ import annotations

import pytest

from queuectl.core.durations import format_duration, parse_duration
from queuectl.core.errors import InvalidInputError


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("1d", 86400.0),
    ("1h2m3s", 3723.0), ("1.5s", 1.5), (".5s", 0.5), ("10", 10.0), ("2.25", 2.25),
    ("0", 0.0), ("0s", 0.0), (" 3M ", 180.0), ("1m500ms", 60.5), ("2h30m", 9000.0),
])
def test_valid_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", " ", "s", "10x", "-5s", "1e3s", "1s1s", "1m 30s", "ten seconds", "1,5s", "5sm",
    "10y", "99999999999h", "inf", "nan",
])
def test_invalid_durations(text: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.3, "300ms"), (5, "5s"), (1.5, "1.5s"), (90, "1m30s"), (3600, "1h"), (3723, "1h2m"),
    (90061, "1d1h"),
])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
