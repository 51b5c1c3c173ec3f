"""The embedded default: with QUEUECTL_REDIS_URL unset, QueueCTL starts its own Redis under
QUEUECTL_DATA_DIR, keeps the data in its append-only file, and ``redis stop`` stops it."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queuectl.core import embedded

from .helpers import Cli, assert_error, assert_ok, env_without_url
from .schemas import check


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # A short path: a Unix socket path must fit in 107 bytes, pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="qc", dir="/tmp"))
    try:
        yield path
    finally:
        sock = embedded.socket_path(path)
        if sock.exists():
            server = redis.Redis(unix_socket_path=str(sock), socket_timeout=10)
            with contextlib.suppress(redis.RedisError):  # already stopped
                server.shutdown(nosave=True)
            server.close()
        shutil.rmtree(path, ignore_errors=True)


def test_embedded_redis_from_first_try_to_stop(cli: Cli, env: dict[str, str],
                                               data_dir: Path) -> None:
    local = env_without_url(env, str(data_dir))

    down = cli("redis", "status", "--json", env=local)
    assert down.code == 6, "redis status exits non-zero while the server is down"
    status = json.loads(down.out)
    assert (status["kind"], status["running"]) == ("embedded", False)
    # A command that only reads does not start a server behind the user's back.
    assert_error(cli("status", env=local), 6, "the embedded Redis is not running",
                 "queuectl redis start")
    assert not embedded.is_running(data_dir)

    # A command that brings work does: the first try needs no setup.
    out = assert_ok(cli("enqueue", "--id", "hello", "--", "echo hi", env=local))
    assert out == "hello pending\n"
    assert embedded.is_running(data_dir)
    counts = json.loads(assert_ok(cli("status", "--json", env=local)))["states"]
    assert counts["pending"] == 1
    assert re.search(r"^pending +1$", assert_ok(cli("status", env=local)), re.MULTILINE)

    status = json.loads(assert_ok(cli("redis", "status", "--json", env=local)))
    assert status["running"] is True
    assert status["url"] == f"unix://{data_dir}/redis.sock"
    assert check(status, "redis-status")["info"]["aof_enabled"] == 1

    out = assert_ok(cli("redis", "stop", env=local))
    assert out == f"embedded Redis stopped; its data stays in {data_dir}\n"
    assert not embedded.is_running(data_dir)
    assert assert_ok(cli("redis", "stop", env=local)) == "embedded Redis is not running\n"
    stopped = cli("redis", "status", env=local)
    assert stopped.code == 6 and "not running" in stopped.out
    assert_error(cli("show", "hello", env=local), 6, "not running")
    assert not embedded.is_running(data_dir)

    # `redis start` brings it back, and the job is still there (the AOF).
    assert assert_ok(cli("redis", "start", env=local)).startswith("embedded Redis started at")
    assert "already running" in assert_ok(cli("redis", "start", env=local))
    shown = json.loads(assert_ok(cli("show", "hello", "--json", env=local)))
    assert (shown["command"], shown["state"]) == ("echo hi", "pending")
    assert_ok(cli("redis", "stop", env=local))
    assert not embedded.is_running(data_dir)


def test_redis_stop_refuses_a_redis_that_is_not_ours(cli: Cli, env: dict[str, str]) -> None:
    assert_error(cli("redis", "stop"), 2, "QUEUECTL_REDIS_URL is set")
    status = json.loads(assert_ok(cli("redis", "status", "--json")))
    assert (status["kind"], status["running"]) == ("external", True)
    assert status["info"]["redis_version"]


def test_a_data_dir_too_long_for_a_socket_is_one_clear_error(cli: Cli, env: dict[str, str],
                                                           tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 100)
    result = cli("redis", "start", env=env_without_url(env, str(deep)))
    assert_error(result, 6, "socket path is too long")
