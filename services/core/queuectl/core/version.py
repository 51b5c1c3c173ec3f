"""The version every program prints for ``--version``, in a module that imports nothing
else: ``queuectl --version`` needs neither redis-py nor the settings."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def version_line(prog: str) -> str:
    """``<prog> <version>`` of the installed distribution."""
    try:
        return f"{prog} {version('queuectl')}"
    except PackageNotFoundError:
        return f"{prog} (not installed)"
