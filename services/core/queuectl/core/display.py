"""Text that came from outside (commands, job output, ids in Redis) made safe to print.

A job's command and output are whatever someone wrote: an ESC sequence can move the
cursor or rewrite a terminal line, a newline can forge a log line, and bidi controls
(U+202E) can make ``rm -rf ~ #txt.sh`` read as something else. Everything a human
reads (tables, ``show``, error lines, service logs) goes through ``escape``; JSON
output is left exact because JSON already escapes what it must.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls; bidi controls (ALM, LRM/RLM, LRE..RLO, LRI..PDI);
# zero-width and invisible characters (ZWSP..ZWJ, WJ..invisible plus, BOM); the Unicode
# line and paragraph separators, which str.splitlines() and some log viewers break on;
# and lone surrogates (undecodable bytes kept by surrogateescape, which print() cannot
# encode).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069"
    "\ufeff\ud800-\udfff]"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    if char in _SHORT:
        return _SHORT[char]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # the original byte of a surrogateescape'd one
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` on one line with every control, bidi and invisible character escaped."""
    return _UNSAFE.sub(_escape_one, text)
