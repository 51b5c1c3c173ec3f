"""Text from outside made safe to show: the escaping helper, the service log formatter, and
times a record may hold but no datetime can (no Redis)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from queuectl.cli import render
from queuectl.core.display import escape
from queuectl.core.durations import format_duration
from queuectl.core.logs import OneLineFormatter
from queuectl.core.models import iso

# Every character the helper must neutralise: C0, DEL, C1, the bidi and invisible
# formatting characters, and the line separators.
UNSAFE = ([chr(c) for c in range(0x20)] + [chr(c) for c in range(0x7F, 0xA0)]
          + ["\u061c", "\u2028", "\u2029", "\ufeff"]
          + [chr(c) for c in range(0x200B, 0x2010)] + [chr(c) for c in range(0x202A, 0x202F)]
          + [chr(c) for c in range(0x2060, 0x2065)] + [chr(c) for c in range(0x2066, 0x206A)])


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_every_unsafe_character_is_escaped(char: str) -> None:
    out = escape(f"a{char}b")
    assert char not in out
    assert out.startswith("a\\") and out.endswith("b")
    assert out.isprintable()
    assert len(out.splitlines()) == 1


@pytest.mark.parametrize(("text", "shown"), [
    ("echo hi", "echo hi"),
    ("café ジョブ ✓ 😀", "café ジョブ ✓ 😀"),
    ("printf '%s\\n' x", "printf '%s\\n' x"),  # a literal backslash stays as it is
    ("a\nb\tc\rd", "a\\nb\\tc\\rd"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("\x9b2J", "\\x9b2J"),
    ("rm -rf ~ #\u202egnp.sh", "rm -rf ~ #\\u202egnp.sh"),
    ("nul\x00byte", "nul\\x00byte"),
    ("bad \udcff byte", "bad \\xff byte"),  # surrogateescape: the original byte
    ("lone \ud800", "lone \\ud800"),
])
def test_escape_forms(text: str, shown: str) -> None:
    assert escape(text) == shown


def test_table_and_pairs_escape_every_cell() -> None:
    out = render.table(["ID", "COMMAND"], [["j1", "x\x1b]0;owned\x07"], ["j\n2", "\u202eabc"]])
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert len(out.splitlines()) == 3
    pairs = render.pairs([("command", "a\nb"), ("last\x1b", "\u2066x")])
    assert pairs.splitlines() == ["command   a\\nb", "last\\x1b  \\u2066x"]


def test_clean_cuts_after_escaping() -> None:
    assert render.clean("\x1b" * 10, 8) == "\\x1b\\x1…"
    assert render.clean(None) == "-"


# -- the service log formatter --------------------------------------------------------------------
@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(OneLineFormatter("%(levelname)s worker %(message)s"))
    logger = logging.getLogger("queuectl.test-display")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def test_a_job_cannot_forge_or_break_a_log_line(
        logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    last_line = "boom\x00\n2026-01-01T00:00:00+0000 ERROR worker fake\x1b[2J\u202e"
    logger.warning("job %s failed (%s); no retries left", "j1", f"exit code 1: {last_line}")
    lines = stream.getvalue().splitlines()
    assert lines == ["WARNING worker job j1 failed (exit code 1: boom\\x00\\n2026-01-01T00:00:00"
                     "+0000 ERROR worker fake\\x1b[2J\\u202e); no retries left"]


def test_a_traceback_stays_on_the_line_of_its_event(
        logged: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = logged
    try:
        raise ValueError("first\nERROR forged")
    except ValueError:
        logger.exception("round failed")
    [line] = stream.getvalue().splitlines()
    assert line.startswith("ERROR worker round failed Traceback (most recent call last):\\n")
    assert line.endswith("ValueError: first\\nERROR forged")


# -- times a record may hold but a datetime cannot ------------------------------------------------
@pytest.mark.parametrize("ts", [1e20, 99999999999999999999.0, 1e32, -1e20, float("inf"),
                                float("-inf"), float("nan")])
def test_out_of_range_times_render(ts: float) -> None:
    assert iso(ts).startswith("out of range: ")
    assert render.when(ts, 0.0).startswith("out of range: ")
    assert isinstance(render.ago(ts, 0.0), str)


def test_in_range_times_are_iso() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(253402300799.0) == "9999-12-31T23:59:59.000Z"


def test_format_duration_of_non_finite_values() -> None:
    assert format_duration(float("inf")) == "forever"
    assert format_duration(float("nan")) == "?"
