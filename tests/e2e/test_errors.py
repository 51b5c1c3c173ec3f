"""Every failure is one line on stderr with its documented exit code; help and version never
touch Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration.procs import Procs

from .helpers import Cli, SecureRedis, assert_error, assert_ok, env_without_url

UNREACHABLE = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("args", [
    ["status"], ["list"], ["show", "x"], ["logs", "x"], ["wait", "x"], ["cancel", "x"],
    ["enqueue", "--", "true"], ["enqueue", '{"command":"true"}'], ["dlq", "list"],
    ["dlq", "retry", "--all"], ["dlq", "purge", "--yes"], ["config", "list"],
    ["config", "set", "max-retries", "1"], ["worker", "list"], ["worker", "stop", "--all"],
    ["redis", "status"],
])
def test_unreachable_redis_exits_6(cli: Cli, env: dict[str, str], args: list[str]) -> None:
    result = cli(*args, env=env | {"QUEUECTL_REDIS_URL": UNREACHABLE})
    assert_error(result, 6, "cannot reach Redis at redis://127.0.0.1:1")
    assert result.stdout == b""


def test_input_is_validated_before_redis_is_needed(cli: Cli, env: dict[str, str],
                                                   tmp_path: Path) -> None:
    data_dir = tmp_path / "never-created"
    for where in (env | {"QUEUECTL_REDIS_URL": UNREACHABLE},
                  env_without_url(env, str(data_dir))):
        assert_error(cli("enqueue", "--file", "-", input="not json\n", env=where), 3,
                     "line 1: invalid JSON")
        assert_error(cli("enqueue", "--delay", "soon", "--", "true", env=where), 3,
                     "invalid duration")
        assert_error(cli("enqueue", "[]", env=where), 3, "not an array")
        assert_error(cli("list", "--state", "asleep", env=where), 3, "unknown state")
        assert_error(cli("enqueue", "--run-at", "9999-12-31T23:59:59-05:00", "--", "true",
                         env=where), 3, "more than ten years ahead")
        assert_error(cli("enqueue", "--run-at", "0001-01-01T00:00:00+05:00", "--", "true",
                         env=where), 3, "before 1970")
        assert_error(cli("enqueue", "--env", "QUEUECTL_X=1", "--", "true", env=where), 3,
                     "reserved")
        assert_error(cli("enqueue", '{"command":"true","run_at":99999999999}', env=where), 3,
                     "ten years ahead")
        assert_error(cli("dlq", "purge", env=where), 2, "--yes")
    assert not data_dir.exists()  # the embedded server was never started


# A URL that cannot work is an invalid setting (3), not an unreachable Redis (6); options
# redis-py does not know for the scheme are found before any connection is tried.
BAD_URLS = [
    ("notaurl", "invalid QUEUECTL_REDIS_URL ***: ", "one of the following schemes"),
    ("http://example.com", "invalid QUEUECTL_REDIS_URL http://example.com: ",
     "one of the following schemes"),
    ("redis://127.0.0.1:1/0?ssl_password=x",
     "invalid QUEUECTL_REDIS_URL redis://127.0.0.1:1/0?ssl_password=***: ",
     "option 'ssl_password' is not known for redis:// URLs (TLS options need rediss://)"),
    ("redis://127.0.0.1:1/0?colour=blue", "invalid QUEUECTL_REDIS_URL ",
     "option 'colour' is not known for redis:// URLs"),
    ("redis://127.0.0.1:1/0?socket_timeout=soon", "invalid QUEUECTL_REDIS_URL ",
     "socket_timeout"),
    ("rediss://127.0.0.1:1/0?ssl_cert_reqs=maybe", "invalid QUEUECTL_REDIS_URL ",
     "Invalid SSL Certificate Requirements Flag: maybe"),
    ("redis://127.0.0.1:1/0?protocol=9", "invalid QUEUECTL_REDIS_URL ", "protocol"),
]


@pytest.mark.parametrize(("url", "start", "fragment"), BAD_URLS,
                         ids=[u.partition("?")[2] or u for u, _, _ in BAD_URLS])
def test_an_unusable_url_is_an_invalid_setting_everywhere(
        cli: Cli, env: dict[str, str], procs: Procs, url: str, start: str,
        fragment: str) -> None:
    line = assert_error(cli("list", env=env | {"QUEUECTL_REDIS_URL": url}), 3, fragment)
    assert line.startswith(f"queuectl: error: {start}"), line
    assert "ssl_password=x" not in line and "internal error" not in line
    for program in ("queuectl-worker", "queuectl-scheduler"):
        proc = procs.start(program, {"QUEUECTL_REDIS_URL": url})
        assert proc.wait_exit() == 3, proc.stderr()
        errors = [ln for ln in proc.stderr().splitlines() if "error" in ln]
        assert errors == [line.replace("queuectl:", f"{program}:", 1)], proc.stderr()


@pytest.fixture
def acl_user(raw: redis.Redis) -> Iterator[str]:
    """An ACL user with a password on the session server (its default user has none)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    raw.acl_setuser(name, enabled=True, passwords=["+right-password"], keys=["*"],
                    channels=["*"], commands=["+@all"])
    yield name
    raw.acl_deluser(name)


def test_wrong_acl_password_exits_6(cli: Cli, env: dict[str, str], redis_url: str,
                                    acl_user: str) -> None:
    host = redis_url.split("://", 1)[1]
    wrong = env | {"QUEUECTL_REDIS_URL": f"redis://{acl_user}:hunter2@{host}"}
    line = assert_error(cli("list", env=wrong), 6, "refused the credentials")
    assert "hunter2" not in line
    right = env | {"QUEUECTL_REDIS_URL": f"redis://{acl_user}:right-password@{host}"}
    assert assert_ok(cli("list", env=right)) == "no jobs\n"


def test_password_protected_redis(cli: Cli, env: dict[str, str],
                                  secure_redis: SecureRedis) -> None:
    missing = env | {"QUEUECTL_REDIS_URL": secure_redis.url(None)}
    assert_error(cli("status", env=missing), 6, "refused the credentials")
    wrong = env | {"QUEUECTL_REDIS_URL": secure_redis.url("hunter2")}
    line = assert_error(cli("list", env=wrong), 6, "refused the credentials")
    assert "hunter2" not in line
    right = env | {"QUEUECTL_REDIS_URL": secure_redis.url(secure_redis.password)}
    assert assert_ok(cli("enqueue", "--id", "safe", "--", "true", env=right)) == "safe pending\n"


@pytest.mark.parametrize(("args", "fragment"), [
    (["frobnicate"], "No such command 'frobnicate'"),
    (["list", "--colour"], "No such option: --colour"),
    (["show"], "Missing argument"),
    (["show", "a", "b"], "unexpected extra argument"),
    (["list", "--limit"], "Option '--limit' requires an argument"),
    (["dlq", "nuke"], "No such command 'nuke'"),
])
def test_usage_errors_exit_2(cli: Cli, args: list[str], fragment: str) -> None:
    assert_error(cli(*args), 2, fragment)


# A well-formed command line with a value that is wrong: invalid input (3), in our words.
@pytest.mark.parametrize(("args", "message"), [
    (["list", "--limit", "many"], "invalid value for --limit: must be a whole number "
                                  "(got 'many')"),
    (["list", "--limit", "-1"], "invalid value for --limit: must be at least 0 (got '-1')"),
    (["list", "-n", "1.5"], "invalid value for --limit: must be a whole number (got '1.5')"),
    (["status", "--interval", "0"], "invalid value for --interval: must be at least 0.1 "
                                    "(got '0')"),
    (["worker", "start", "--count", "-2"], "invalid value for --count: must be at least 1 "
                                           "(got '-2')"),
    (["--show-completion", "tcsh"], "invalid value for --show-completion: 'tcsh' is not one "
                                    "of 'bash', 'zsh', 'fish'"),
])
def test_a_bad_value_exits_3_in_plain_words(cli: Cli, args: list[str], message: str) -> None:
    assert assert_error(cli(*args), 3) == f"queuectl: error: {message}"


def test_invalid_environment_exits_3(cli: Cli, env: dict[str, str]) -> None:
    assert_error(cli("list", env=env | {"QUEUECTL_CONCURRENCY": "lots"}), 3,
                 "invalid environment QUEUECTL_CONCURRENCY: must be a whole number")
    line = assert_error(cli("status", env=env | {"QUEUECTL_CONCURRENCY": "0"}), 3)
    assert line == "queuectl: error: invalid environment QUEUECTL_CONCURRENCY: must be at least 1"


def test_help_version_and_usage_errors_ignore_a_bad_environment(cli: Cli,
                                                                 env: dict[str, str]) -> None:
    bad = env | {"QUEUECTL_CONCURRENCY": "0"}
    assert assert_ok(cli("--help", env=bad)).startswith("Usage: queuectl")
    assert assert_ok(cli("list", "--help", env=bad)).startswith("Usage: queuectl list")
    assert assert_ok(cli("--version", env=bad)).startswith("queuectl ")
    assert_error(cli("list", "--colour", env=bad), 2, "No such option: --colour")


def test_help_and_version_never_touch_redis(cli: Cli, env: dict[str, str],
                                            tmp_path: Path) -> None:
    data_dir = tmp_path / "never-created"
    for where in (env | {"QUEUECTL_REDIS_URL": UNREACHABLE},
                  env_without_url(env, str(data_dir))):
        for args in (["--help"], ["-h"], ["enqueue", "--help"], ["dlq", "purge", "--help"],
                     ["worker", "start", "--help"], []):
            out = assert_ok(cli(*args, env=where))
            assert out.startswith("Usage: queuectl"), out
        assert assert_ok(cli("--version", env=where)).startswith("queuectl ")
    assert not data_dir.exists()


def test_top_level_help_lists_every_command(cli: Cli) -> None:
    out = assert_ok(cli("--help"))
    for command in ("enqueue", "status", "list", "show", "logs", "wait", "cancel", "dlq",
                    "config", "worker", "scheduler", "redis"):
        assert f"\n  {command} " in out, command
    assert "Exit codes" in out


# Each would crash a service with a traceback (OverflowError in a wait or a socket timeout),
# print escape sequences as the worker's id, or could not be decoded at all.
BAD_ENVIRONMENT = [
    ("QUEUECTL_IDLE_WAIT", "1e300", "must be at most 300"),
    ("QUEUECTL_HEARTBEAT_INTERVAL", "inf", "finite number"),
    ("QUEUECTL_WORKER_TTL", "inf", "finite number"),
    ("QUEUECTL_SCHEDULER_INTERVAL", "nan", "finite number"),
    ("QUEUECTL_KILL_GRACE", "1e400", "finite number"),
    ("QUEUECTL_WORKER_ID", "w\x1b[31m\nfake", "not a usable id"),
    ("QUEUECTL_POLICY", "{not json", "not valid JSON"),
]


@pytest.mark.parametrize(("name", "value", "fragment"), BAD_ENVIRONMENT,
                         ids=[n for n, _, _ in BAD_ENVIRONMENT])
def test_a_bad_setting_is_one_line_and_exit_3_everywhere(
        cli: Cli, env: dict[str, str], procs: Procs, name: str, value: str,
        fragment: str) -> None:
    bad = {name: value}
    for args in (["status"], ["worker", "start"], ["scheduler"]):
        line = assert_error(cli(*args, env=env | bad), 3, f"invalid environment {name}: ",
                            fragment)
        assert "\x1b" not in line
    for program in ("queuectl-worker", "queuectl-scheduler"):
        proc = procs.start(program, bad)
        assert proc.wait_exit() == 3, proc.stderr()
        lines = proc.stderr().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{program}: error: invalid environment "
                                                       f"{name}: "), lines
        assert fragment in lines[0] and "\x1b" not in lines[0]
