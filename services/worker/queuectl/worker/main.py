"""Entry point of ``queuectl-worker`` and ``queuectl worker start`` (being written)."""

from __future__ import annotations

from queuectl.core.settings import Settings


def run(settings: Settings, *, count: int | None = None, queues: list[str] | None = None) -> int:
    """Run a worker in the foreground until stopped; returns the process exit code."""
    raise NotImplementedError


def main() -> None:
    raise SystemExit(run(Settings()))
