"""Real Redis servers for the tests: a URL given by the environment, a testcontainer, or a
``redis-server`` binary started on a free port, in that order."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 10.0) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        finally:
            client.close()


def wait_uptime(url: str, seconds: float, timeout: float = 30.0) -> None:
    """Wait until the server at ``url`` has been up ``seconds`` (reap.lua calls no worker
    dead before Redis has been up a TTL)."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while int(client.info("server")["uptime_in_seconds"]) < seconds:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis at {url} has not been up {seconds:g}s")
            time.sleep(0.1)
    finally:
        client.close()


class LocalRedis:
    """A redis-server process this test owns: it can be shut down and started again."""

    def __init__(self, workdir: Path, *, appendonly: bool = True, port: int | None = None,
                 extra: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.appendonly = appendonly
        self.extra = list(extra)  # more redis-server options, as a test needs them
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.workdir), "--appendonly", "yes" if self.appendonly else "no",
             "--appendfsync", "always", "--logfile", str(self.workdir / "redis.log"),
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_ready(self.url)
        return self

    def stop(self) -> None:
        """SHUTDOWN as an operator would (the AOF is flushed), then reap the process."""
        if self.proc is None:
            return
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown(nosave=not self.appendonly)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def docker_answers() -> bool:
    # docker.from_env() leaks its socket when no daemon answers; under
    # filterwarnings=error that ResourceWarning would fail whichever test runs first.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            import docker

            docker.from_env(timeout=3).ping()
            return True
        except Exception:
            return False
        finally:
            gc.collect()


class Stoppable(Protocol):
    def stop(self) -> object: ...


def session_redis_url(tmp: Path) -> tuple[str, Stoppable | None]:
    """Return (url, handle to stop later) following the order in DEVELOPERS.md / README."""
    url = os.environ.get("QUEUECTL_TEST_REDIS_URL")
    if url:
        return url, None
    if docker_answers():
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
        try:
            from testcontainers.redis import RedisContainer

            container = RedisContainer("redis:7")
            container.start()
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            return f"redis://{host}:{port}/0", container
        except Exception as exc:
            print(f"\n[tests] Docker answers but a Redis container failed ({exc}); "
                  "falling back to a local redis-server")
    server = LocalRedis(tmp / "session-redis", appendonly=False).start()
    return server.url, server
