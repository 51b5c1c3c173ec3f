"""Fixtures of the chaos tier: each test gets a Redis server and a scenario of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import Chaos
from tests.redis_server import LocalRedis


@pytest.fixture
def chaos(own_redis: LocalRedis, tmp_path: Path) -> Iterator[Chaos]:
    """A scenario on the test's own AOF Redis (tests/conftest.py ``own_redis``); every
    process it started is killed at the end, before that server stops."""
    scenario = Chaos(own_redis, tmp_path / "chaos")
    yield scenario
    scenario.close()
