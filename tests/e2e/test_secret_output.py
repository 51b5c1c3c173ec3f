"""No service prints a Redis password: connection errors of the CLI, the worker and the
scheduler, with the password in the URL, percent-encoded or (wrongly) not."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.integration.procs import Proc, Procs, eventually
from tests.redis_server import free_port
from tests.secure_servers import HOSTILE_PASSWORD, HOSTILE_USER, assert_files_hidden, assert_hidden

from .helpers import Cli, assert_error

# Printed by nobody: distinctive enough that any piece of it would be noticed.
PASSWORD = f"Sekr1tPart-{HOSTILE_PASSWORD}"
# The same password written into the URL without percent-encoding: urllib would cut the
# netloc at its "/", read "Sekr1tPart-p@ss:w" as host and port and the rest as a path.
UNENCODED_PIECES = ("Sekr1tPart", "rd%41", "frag", "q=1")


def closed_url(*, query: str = "") -> str:
    """A URL with user and hostile password, encoded as it must be, on a closed port."""
    user, password = quote(HOSTILE_USER, safe=""), quote(PASSWORD, safe="")
    return f"redis://{user}:{password}@127.0.0.1:{free_port()}/0{query}"


def unencoded_url() -> str:
    return f"redis://admin:{PASSWORD}@127.0.0.1:{free_port()}/0"


def wait_for_line(proc: Proc, fragment: str) -> str:
    """The first stderr line holding ``fragment``, once the process has logged it."""
    def logged() -> str | None:
        assert proc.alive(), f"{proc.name} exited early:\n{proc.stderr()}"
        return next((line for line in proc.stderr().splitlines() if fragment in line), None)

    line = eventually(logged, 30, what=f"{proc.name} logs {fragment!r}")
    assert line is not None
    return line


def assert_service_hid_it(proc: Proc, code: int = 0) -> None:
    proc.signal()
    assert proc.wait_exit() == code
    assert "Traceback" not in proc.stderr()
    assert_hidden(proc.stderr(), PASSWORD, where=f"{proc.name} stderr")
    assert_hidden(proc.stdout(), PASSWORD, where=f"{proc.name} stdout")


@pytest.mark.parametrize("args", [
    ["status"], ["list"], ["enqueue", "--", "true"], ["redis", "status"], ["redis", "status",
                                                                            "--json"],
])
def test_cli_connection_error_hides_the_password(cli: Cli, env: dict[str, str],
                                                 args: list[str]) -> None:
    url = closed_url(query="?password=also-secret&socket_timeout=5")
    result = cli(*args, env=env | {"QUEUECTL_REDIS_URL": url, "QUEUECTL_LOG_LEVEL": "DEBUG"})
    line = assert_error(result, 6, "cannot reach Redis at redis://ops%3Aqueue%40ctl:***@")
    assert "?password=***&socket_timeout=5" in line
    assert_hidden(result.err + result.out, PASSWORD, "also-secret")


def test_worker_connection_error_hides_the_password(procs: Procs) -> None:
    worker = procs.worker({"QUEUECTL_REDIS_URL": closed_url(), "QUEUECTL_LOG_LEVEL": "DEBUG"})
    line = wait_for_line(worker, "unavailable")
    assert "Redis at redis://ops%3Aqueue%40ctl:***@127.0.0.1:" in line
    assert_service_hid_it(worker)


def test_scheduler_connection_error_hides_the_password(procs: Procs) -> None:
    scheduler = procs.scheduler({"QUEUECTL_REDIS_URL": closed_url(),
                                 "QUEUECTL_LOG_LEVEL": "DEBUG"})
    start = wait_for_line(scheduler, "started (redis ")
    assert "redis://ops%3Aqueue%40ctl:***@127.0.0.1:" in start
    wait_for_line(scheduler, "unavailable")
    assert_service_hid_it(scheduler)


def test_an_unencoded_password_is_refused_by_every_service_without_showing_it(
    cli: Cli, env: dict[str, str], procs: Procs, tmp_path: Path
) -> None:
    """redis-py would read part of the password as the host and look it up in DNS."""
    url = unencoded_url()
    line = assert_error(cli("status", env=env | {"QUEUECTL_REDIS_URL": url}), 3,
                        "invalid QUEUECTL_REDIS_URL redis://***@", "percent-encode")
    for piece in UNENCODED_PIECES:
        assert piece not in line, (piece, line)
    for program in ("queuectl-worker", "queuectl-scheduler"):
        proc = procs.start(program, {"QUEUECTL_REDIS_URL": url})
        assert proc.wait_exit() == 3
        lines = [ln for ln in proc.stderr().splitlines() if "error" in ln]
        assert lines == [f"{program}: error: {line.removeprefix('queuectl: error: ')}"]
        for piece in UNENCODED_PIECES:
            assert piece not in proc.stderr() + proc.stdout().decode(), (program, piece)
    assert_files_hidden(tmp_path, PASSWORD)
