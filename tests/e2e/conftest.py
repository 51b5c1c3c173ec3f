"""Fixtures of the end-to-end tier: the ``queuectl`` console script run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.procs import Procs
from tests.redis_server import free_port, wait_ready

from .helpers import Cli, Result, SecureRedis, run_cli


@pytest.fixture
def cli(env: dict[str, str]) -> Cli:
    """``cli("list", "--json", input=..., env=...)`` runs the console script."""

    default_env = env

    def call(*args: str, input: bytes | str | None = None,
             env: dict[str, str] | None = None, timeout: float = 60) -> Result:
        return run_cli(env or default_env, args, input=input, timeout=timeout)

    return call


@pytest.fixture
def procs(env: dict[str, str], tmp_path: Path) -> Iterator[Procs]:
    """Worker and scheduler processes next to the CLI; killed at the end if still running."""
    manager = Procs(env, tmp_path / "procs")
    yield manager
    manager.cleanup()


@pytest.fixture(scope="session")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureRedis]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required"
    workdir = tmp_path_factory.mktemp("secure-redis")
    server = SecureRedis(free_port(), "s3cret")
    proc = subprocess.Popen(
        [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--requirepass", server.password],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(server.url(server.password))
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=10)

