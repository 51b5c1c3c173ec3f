"""Loading the Lua scripts: each state transition is one file, shared blocks are included.

A line ``--- @include "guard"`` inlines ``scripts/lib/guard.lua`` (as BullMQ's
``--- @include`` does), once per script even when several includes ask for it,
so a check such as the job-record validation is written once and every script
that relies on it runs the same code. Includes may include others.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable

_INCLUDE = re.compile(r'^--- @include "([a-z_]+)"\s*$', re.MULTILINE)


def _folder() -> Traversable:
    return resources.files("queuectl.core") / "scripts"


@cache
def script_source(name: str) -> str:
    """The text of ``scripts/<name>.lua`` with every include inlined."""
    return expand((_folder() / f"{name}.lua").read_text("utf-8"), name)


def expand(text: str, name: str = "<text>") -> str:
    """``text`` with every ``--- @include`` inlined (each library once)."""
    folder = _folder()
    seen: set[str] = set()

    def expand_from(text: str, chain: tuple[str, ...]) -> str:
        def one(match: re.Match[str]) -> str:
            lib = match.group(1)
            if lib in chain:
                raise ValueError(f"include cycle: {' -> '.join((*chain, lib))}")
            if lib in seen:
                return f"-- ({lib} included above)"
            seen.add(lib)
            body = (folder / "lib" / f"{lib}.lua").read_text("utf-8")
            return f"-- >>> {lib}\n{expand_from(body, (*chain, lib)).rstrip()}\n-- <<< {lib}"

        return _INCLUDE.sub(one, text)

    return expand_from(text, (name,))


def script_names() -> list[str]:
    """Every transition script (not the included blocks), by file name."""
    return sorted(
        entry.name.removesuffix(".lua") for entry in _folder().iterdir()
        if entry.name.endswith(".lua")
    )
