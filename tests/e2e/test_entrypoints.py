"""The service console scripts read their command line: ``--help`` and ``--version`` answer
without reading settings, reaching Redis or starting anything; any other argument is a
usage error. (``kubectl exec POD -- queuectl-worker --help`` used to start a second worker.)"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from queuectl.core.client import Client
from tests.integration.procs import Procs
from tests.redis_server import LocalRedis

from .helpers import Cli, assert_ok, env_without_url

SERVICES = ["queuectl-worker", "queuectl-scheduler"]
README = Path(__file__).resolve().parents[2] / "README.md"
OWN_VARIABLES = {
    "queuectl-worker": ["QUEUECTL_QUEUES", "QUEUECTL_CONCURRENCY", "QUEUECTL_SHUTDOWN_GRACE"],
    "queuectl-scheduler": ["QUEUECTL_SCHEDULER_INTERVAL"],
}


def readme_tables(heading: str) -> list[list[int]]:
    """The codes of each ``| code | meaning |`` table in the README section ``heading``."""
    section = README.read_text().split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"(?:^\|.*\n)+", section, re.MULTILINE)
    return [[int(code) for code in re.findall(r"^\| (\d+) \|", block, re.MULTILINE)]
            for block in blocks]


def listed_codes(help_text: str) -> list[int]:
    """The codes under ``Exit codes:`` in a service's help."""
    block = help_text.split("\nExit codes:\n", 1)[1]
    return [int(m.group(1)) for m in re.finditer(r"^  (\d+)  ", block, re.MULTILINE)]


def places(env: dict[str, str], tmp_path: Path) -> list[dict[str, str]]:
    """Where a started service would show: a Redis it could not reach (it would wait
    forever), the embedded default (it would create the data dir), a live Redis (it would
    register), and an environment it would refuse (exit 3)."""
    return [env | {"QUEUECTL_REDIS_URL": "redis://127.0.0.1:1/0"},
            env_without_url(env, str(tmp_path / "never-created")),
            env,
            env | {"QUEUECTL_CONCURRENCY": "0"}]


@pytest.mark.parametrize("program", SERVICES)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_says_what_the_service_is_and_starts_nothing(
        procs: Procs, env: dict[str, str], tmp_path: Path, client: Client, program: str,
        flag: str) -> None:
    for where in places(env, tmp_path):
        proc = procs.start(program, where, [flag])
        assert proc.wait_exit() == 0, proc.stderr()
        assert proc.stderr() == ""
        text = proc.stdout().decode()
        words = " ".join(text.split())
        usage = f"Usage: {program} [--help | --version | --check [live|ready]]\n"
        assert text.startswith(usage), text
        assert "configured only by QUEUECTL_* environment variables" in words
        for name in ["QUEUECTL_REDIS_URL", "QUEUECTL_KEY_PREFIX", *OWN_VARIABLES[program]]:
            assert f"\n  {name} " in text, name
        assert re.search(rf"^Example:\n  .*{program}$", text, re.MULTILINE), text
        # The same codes as the README's table of the services.
        assert listed_codes(text) == readme_tables("### Exit codes")[1]
    assert not (tmp_path / "never-created").exists()
    assert client.status().workers == [] and client.status().schedulers == {}


@pytest.mark.parametrize("program", SERVICES)
def test_version_everywhere(procs: Procs, env: dict[str, str], tmp_path: Path,
                            program: str) -> None:
    for where in places(env, tmp_path):
        proc = procs.start(program, where, ["--version"])
        assert proc.wait_exit() == 0, proc.stderr()
        assert proc.stdout().decode() == f"{program} {version('queuectl')}\n"
        assert proc.stderr() == ""


def test_queuectl_version(cli: Cli) -> None:
    assert assert_ok(cli("--version")) == f"queuectl {version('queuectl')}\n"


@pytest.mark.parametrize("program", SERVICES)
@pytest.mark.parametrize(("args", "what"), [
    (["--bogus"], "option '--bogus'"),
    (["-x"], "option '-x'"),
    (["--help=yes"], "option '--help=yes'"),
    (["start"], "argument 'start'"),
    (["-"], "argument '-'"),
    (["\x1b[31mred"], "argument '\\x1b[31mred'"),
    (["--bogus", "--help"], "option '--bogus'"),  # taken in order, as Click does
])
def test_any_other_argument_is_a_usage_error(procs: Procs, env: dict[str, str],
                                             tmp_path: Path, program: str, args: list[str],
                                             what: str) -> None:
    for where in places(env, tmp_path):
        proc = procs.start(program, where, args)
        assert proc.wait_exit() == 2, proc.stderr()
        assert proc.stdout() == b""
        assert proc.stderr().splitlines() == [
            f"{program}: error: unexpected {what}: the service takes no arguments and is "
            f"configured by QUEUECTL_* environment variables (see {program} --help)"]
    assert not (tmp_path / "never-created").exists()


@pytest.mark.parametrize(("program", "local"), [("queuectl-worker", "queuectl worker start"),
                                                ("queuectl-scheduler", "queuectl scheduler")])
def test_a_service_without_a_redis_url_refuses_to_start(
        procs: Procs, env: dict[str, str], tmp_path: Path, program: str, local: str) -> None:
    # In a pod, a misspelled QUEUECTL_REDIS_URL must not run a worker on a private Redis.
    data = tmp_path / "never-created"
    procs.env = env_without_url(env, str(data))  # start() adds to procs.env, never removes
    proc = procs.start(program)
    assert proc.wait_exit() == 3
    assert proc.stderr() == (
        f"{program}: error: QUEUECTL_REDIS_URL is not set: a service works on the Redis that "
        "its workers, schedulers and CLI share, never on a private one (to try QueueCTL on "
        f"this machine with its embedded Redis, run '{local}')\n")
    assert not data.exists()  # no embedded server was started


@pytest.mark.parametrize("program", SERVICES)
def test_a_redis_that_cannot_load_the_scripts_stops_a_service_with_one_line(
        procs: Procs, env: dict[str, str], tmp_path: Path, program: str) -> None:
    # SCRIPT renamed away, as some managed Redis offerings do: not an outage to wait out.
    server = LocalRedis(tmp_path / "redis", appendonly=False,
                        extra=("--rename-command", "SCRIPT", "")).start()
    try:
        proc = procs.start(program, {"QUEUECTL_REDIS_URL": server.url})
        assert proc.wait_exit() == 1
        assert proc.stderr().splitlines()[-1] == (
            f"{program}: error: Redis cannot load QueueCTL's Lua scripts: unknown command "
            "'SCRIPT'")
        assert "Traceback" not in proc.stderr()
    finally:
        server.stop()
