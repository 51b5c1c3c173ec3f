"""The version every program prints for ``--version``, in a module that imports nothing
at import time: ``queuectl --help`` and shell completion load it and never ask."""

from __future__ import annotations


def version_line(prog: str) -> str:
    """``<prog> <version>`` of the installed distribution."""
    # importlib.metadata costs ~8 ms to import; only --version needs it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{prog} {version('queuectl')}"
    except PackageNotFoundError:
        return f"{prog} (not installed)"
