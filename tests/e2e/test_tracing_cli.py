"""Tracing as a CLI user meets it: bad OTEL_* settings, an unreachable collector, and the
cost of tracing when it is off (nothing of the SDK is even imported)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from queuectl.core.client import Client
from tests.integration.procs import Procs

from .helpers import Cli, assert_error, assert_ok
from .schemas import check

ZIPKIN = {"OTEL_TRACES_EXPORTER": "zipkin"}
# What tracing needs that a command must not import while tracing is off.
SDK_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "grpc")


def test_a_bad_otel_setting_is_invalid_input_and_nothing_is_stored(
        cli: Cli, env: dict[str, str], client: Client) -> None:
    bad = {**env, **ZIPKIN}
    assert_error(cli("enqueue", "--id", "one", "--", "true", env=bad), 3,
                 "invalid environment OTEL_TRACES_EXPORTER: 'zipkin' is not supported")
    assert client.find("one") is None
    lines = '{"id": "f1", "command": "true"}\n{"id": "f2", "command": "true"}\n'
    protocol = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    assert_error(cli("enqueue", "--file", "-", input=lines, env=protocol), 3,
                 "OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' is not supported")
    assert client.find("f1") is None and client.find("f2") is None
    # Reading makes no span, so it never needs the tracing settings.
    assert_ok(cli("status", env=bad))


@pytest.mark.parametrize("program", ["queuectl-worker", "queuectl-scheduler"])
def test_a_service_with_a_bad_otel_setting_stops_at_start(procs: Procs, program: str) -> None:
    proc = procs.start(program, ZIPKIN)
    assert proc.wait_exit() == 3
    assert proc.stderr().splitlines() == [
        f"{program}: error: invalid environment OTEL_TRACES_EXPORTER: 'zipkin' is not "
        "supported (use otlp, console, none)"]


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An OTLP endpoint that accepts connections and never answers (the worst collector:
    each export waits for its own timeout, 10 s, then retries)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_an_unreachable_collector_does_not_hold_a_command(
        cli: Cli, env: dict[str, str], client: Client, blackhole: str) -> None:
    started = time.monotonic()
    result = cli("enqueue", "--json", "--id", "sent", "--", "true",
                 env={**env, "OTEL_EXPORTER_OTLP_ENDPOINT": blackhole})
    elapsed = time.monotonic() - started
    assert result.code == 0, result.err
    # Bounded by the CLI's 2 s flush, far below the exporter's own 10 s timeout.
    assert elapsed < 8, f"enqueue took {elapsed:.1f}s"
    (warning,) = result.err.splitlines()
    assert warning.startswith("queuectl: warning: traces not exported within 2s"), warning
    job = check(json.loads(result.out), "job")
    assert job["id"] == "sent" and job["trace_id"] is not None
    assert client.get("sent").trace_context


def loaded_modules(env: dict[str, str], *args: str, stdin: str = "") -> list[str]:
    """Run one CLI command in a fresh interpreter; the SDK modules it imported."""
    code = (
        "import json, sys\n"
        "from queuectl.cli.main import run\n"
        f"code = run({list(args)!r})\n"
        f"loaded = sorted(m for m in sys.modules if m.startswith({SDK_MODULES!r}))\n"
        "print(json.dumps([code, loaded]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, check=False, input=stdin)
    status, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert status == 0, (done.stdout, done.stderr)
    return list(loaded)


def test_tracing_off_imports_nothing_of_the_sdk(env: dict[str, str]) -> None:
    assert loaded_modules(env, "enqueue", "--quiet", "--", "true") == []
    jobs = '{"command": "true"}\n{"command": "false"}\n'
    assert loaded_modules(env, "enqueue", "--file", "-", "--quiet", stdin=jobs) == []
    # The same command with tracing on does import it (so the check above can fail).
    console = {**env, "OTEL_TRACES_EXPORTER": "console"}
    assert "opentelemetry.sdk.trace" in loaded_modules(console, "enqueue", "--", "true")
