"""Fixtures of the scale-out tier: a real Redis Cluster and a real Sentinel deployment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Result, run_cli
from tests.integration.procs import Procs

from .servers import LocalCluster, LocalSentinels


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    servers = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield servers.up()
    finally:
        servers.stop()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[LocalSentinels]:
    servers = LocalSentinels(tmp_path / "sentinel")
    try:
        yield servers.up()
    finally:
        servers.stop()


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


class Deployment:
    """One QueueCTL deployment (URL, prefix) with its CLI and its service processes."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.procs = Procs(env, workdir)

    def cli(self, *args: str, timeout: float = 60) -> Result:
        return run_cli(self.env, list(args), timeout=timeout)

    def ok(self, *args: str, timeout: float = 60) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.code == 0, (args, result.code, result.out, result.err)
        return result.out


@pytest.fixture
def deploy(env: dict[str, str], tmp_path: Path) -> Iterator[list[Deployment]]:
    """Makes deployments over the test's environment; their processes are killed at the end."""
    made: list[Deployment] = []
    yield made
    for deployment in made:
        deployment.procs.cleanup()


def deployment(made: list[Deployment], env: dict[str, str], workdir: Path,
               **settings: str) -> Deployment:
    out = Deployment({**env, **{f"QUEUECTL_{k.upper()}": v for k, v in settings.items()}},
                     workdir / f"deploy-{len(made)}")
    made.append(out)
    return out
