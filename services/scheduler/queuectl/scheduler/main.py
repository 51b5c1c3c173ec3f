"""Entry point of ``queuectl-scheduler`` and ``queuectl scheduler`` (being written)."""

from __future__ import annotations

from queuectl.core.settings import Settings


def run(settings: Settings) -> int:
    """Run the scheduler in the foreground until stopped; returns the process exit code."""
    raise NotImplementedError


def main() -> None:
    raise SystemExit(run(Settings()))
