"""Shared fixtures: one real Redis per test session, a fresh key prefix per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.settings import Settings
from tests.redis_server import LocalRedis, session_redis_url
from tests.secure_servers import HOSTILE_PASSWORD, GuardedRedis, TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, handle = session_redis_url(tmp_path_factory.mktemp("redis"))
    yield url
    if handle is not None:
        handle.stop()


@pytest.fixture
def key_prefix() -> str:
    # A fresh prefix per test isolates tests sharing one server without FLUSHALL.
    return f"qt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(redis_url: str, key_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment for QueueCTL processes started by a test."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    out.update({
        "QUEUECTL_REDIS_URL": redis_url,
        "QUEUECTL_KEY_PREFIX": key_prefix,
        "QUEUECTL_DATA_DIR": str(tmp_path / "data"),
        "QUEUECTL_LOG_DIR": str(tmp_path / "logs"),
        "QUEUECTL_HEARTBEAT_INTERVAL": "0.5",
        "QUEUECTL_WORKER_TTL": "3",
        # Many services run at once in the suite: a test that wants an endpoint picks a
        # free port itself.
        "QUEUECTL_METRICS_PORT": "0",
    })
    return out


@pytest.fixture
def settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        if name.startswith("QUEUECTL_"):
            monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[Client]:
    c = Client.connect(settings)
    yield c
    c.redis.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    yield r
    r.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """A server of this test's own, with AOF, for restart scenarios."""
    server = LocalRedis(tmp_path / "own-redis", appendonly=True).start()
    yield server
    server.stop()


# -- guarded servers: TLS, passwords, ACL users (tests/secure_servers.py) -----------------------
@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A throwaway CA with server and client certificates, made by openssl."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory,
              tls_files: TlsFiles) -> Iterator[GuardedRedis]:
    """A server that speaks TLS only (no plain port), clients need no certificate."""
    server = GuardedRedis(tmp_path_factory.mktemp("tls-redis"), tls=tls_files).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hostile_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedRedis]:
    """Plain TCP, the default user's password full of URL syntax (@ : / % # ? &)."""
    server = GuardedRedis(tmp_path_factory.mktemp("hostile-redis"),
                          requirepass=HOSTILE_PASSWORD).start()
    yield server
    server.stop()
