"""Fixtures of the integration tier: real worker and scheduler processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .procs import Procs


@pytest.fixture
def procs(env: dict[str, str], tmp_path: Path) -> Iterator[Procs]:
    """Starts QueueCTL processes; whatever is still running at the end is killed."""
    manager = Procs(env, tmp_path / "procs")
    yield manager
    manager.cleanup()
