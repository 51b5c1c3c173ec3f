"""The README's exit-code table, walked: every code it lists is produced by a real command,
and it lists exactly the codes QueueCTL produces (as does ``queuectl --help``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Callable

import pytest
import redis

from queuectl.core.client import Client

from .helpers import (
    FAKE_WORKER,
    QUEUECTL,
    Cli,
    Result,
    assert_error,
    assert_ok,
    background,
    make_dead,
    take,
)
from .test_entrypoints import readme_tables

UNREACHABLE = "redis://127.0.0.1:1/0"


class World:
    """What a producer may use: the CLI, a client, raw Redis and the environment."""

    def __init__(self, cli: Cli, client: Client, raw: redis.Redis, env: dict[str, str]) -> None:
        self.cli, self.client, self.raw, self.env = cli, client, raw, env


def _interrupted(w: World) -> Result:
    """Ctrl-C (SIGINT) to a command blocked following a job that does not end."""
    w.client.enqueue("sleep 600", job_id="blocked")
    held = take(w.client, "blocked")
    w.client.store.log_append(held, FAKE_WORKER, b"started\n", 8)
    with background(w.env, "logs", "--follow", "blocked") as proc:
        assert proc.stdout is not None
        assert proc.stdout.read(8) == b"started\n"  # it is following now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    return Result(proc.returncode, out, err)


def _failed(w: World) -> Result:
    make_dead(w.client, "gone")
    return w.cli("wait", "gone")


def _wrong_type(w: World) -> Result:
    w.raw.set(w.client.keys.dead_letter, "planted by hand")
    return w.cli("dlq", "list")


PRODUCERS: dict[int, tuple[Callable[[World], Result], str]] = {
    0: (lambda w: w.cli("list"), ""),
    1: (_failed, ""),
    2: (lambda w: w.cli("list", "--colour"), "No such option: --colour"),
    3: (lambda w: w.cli("enqueue", '{"command":'), "invalid JSON"),
    4: (lambda w: w.cli("show", "nosuch"), "no job nosuch"),
    5: (lambda w: (w.cli("enqueue", "--id", "twice", "--", "true"),
                   w.cli("enqueue", "--id", "twice", "--", "true"))[1], "already exists"),
    6: (lambda w: w.cli("list", env=w.env | {"QUEUECTL_REDIS_URL": UNREACHABLE}),
        "cannot reach Redis"),
    7: (lambda w: (w.client.enqueue("true", job_id="never"),
                   w.cli("wait", "never", "--timeout", "0.2"))[1], "timed out"),
    8: (_wrong_type, "WRONGTYPE"),
    130: (_interrupted, ""),
}


@pytest.mark.parametrize("code", sorted(PRODUCERS))
def test_each_code_comes_from_a_real_command(cli: Cli, client: Client, raw: redis.Redis,
                                             env: dict[str, str], code: int) -> None:
    produce, fragment = PRODUCERS[code]
    result = produce(World(cli, client, raw, env))
    if fragment:
        assert_error(result, code, fragment)
    else:
        assert result.code == code, (result.code, result.out, result.err)
        assert result.err == ""


def test_the_readme_lists_exactly_these_codes(cli: Cli) -> None:
    assert readme_tables("### Exit codes")[0] == sorted(PRODUCERS)
    epilog = " ".join(assert_ok(cli("--help")).split("Exit codes:", 1)[1].split())
    assert [int(n) for n in re.findall(r"(?:^|, )(\d+) ", epilog)] == sorted(PRODUCERS)


@pytest.mark.parametrize("args", [["dlq", "purge"], ["quarantine", "purge", "--all"]])
@pytest.mark.parametrize(("answer", "code"), [("n", 130), ("y", 0)])
def test_a_declined_prompt_is_cancelled_with_130(env: dict[str, str], client: Client,
                                                 cli: Cli, args: list[str], answer: str,
                                                 code: int) -> None:
    make_dead(client, "dead")
    client.enqueue("true", job_id="odd")
    client.redis.hset(client.keys.job("odd"), "attempts", "many")
    assert cli("doctor", "--repair").code == 1  # "odd" is in quarantine now
    before = client.status().states
    main, tty = os.openpty()
    try:
        os.write(main, f"{answer}\n".encode())
        proc = subprocess.run([QUEUECTL, *args], env=env, stdin=tty, capture_output=True,
                              timeout=60, check=False)
    finally:
        os.close(tty)
        os.close(main)
    assert proc.returncode == code, proc.stderr
    assert b"Delete " in proc.stdout
    if code == 130:
        assert proc.stderr == b"queuectl: cancelled: nothing purged\n"
        assert client.status().states == before
    else:
        assert proc.stdout.endswith(b"purged 1 job\n") and proc.stderr == b""


@pytest.mark.parametrize(("key", "args"), [
    ("dead_letter", ["dlq", "retry", "--all"]),
    ("dead_letter", ["dlq", "purge", "--yes"]),
    ("quarantine", ["quarantine", "list"]),
])
def test_a_key_of_the_wrong_type_is_exit_8_not_6(cli: Cli, client: Client, raw: redis.Redis,
                                                 key: str, args: list[str]) -> None:
    raw.set(getattr(client.keys, key), "planted by hand")
    assert_error(cli(*args), 8, "WRONGTYPE", "(queuectl doctor)")


@pytest.mark.parametrize("args", [
    ["config", "set", "max-retries", "-1"], ["config", "set", "job-timeout", "10 minutes"],
    ["config", "set", "colour", "1"], ["config", "unset", "colour"],
    ["config", "get", "colour"], ["show", "bad/id"], ["cancel", "bad/id"],
    ["wait", "bad/id"], ["wait", "x", "--timeout", "-1"], ["logs", "x", "--timeout", "xyz"],
    ["list", "--state", "bogus"], ["list", "--queue", "bad/q"], ["list", "--limit", "-1"],
    ["list", "--cursor", "zzz"], ["dlq", "list", "--cursor", "zzz"],
    ["dlq", "retry", "bad/id"], ["quarantine", "retry", "bad/id"],
    ["quarantine", "purge", "bad/id"], ["enqueue", "{}"],
    ["enqueue", "--delay", "-5", "--", "true"],
    ["enqueue", "--queue", "bad/q", "--", "true"], ["worker", "start", "--count", "0"],
    ["worker", "start", "--queues", "bad/q"], ["worker", "stop", "bad/id"],
    ["status", "--interval", "0"],
], ids=" ".join)
def test_a_bad_value_is_refused_before_redis_is_reached(cli: Cli, env: dict[str, str],
                                                       args: list[str]) -> None:
    """Invalid input is exit 3 whether or not Redis answers: it is checked first."""
    result = cli(*args, env=env | {"QUEUECTL_REDIS_URL": UNREACHABLE})
    assert result.code == 3, (result.code, result.err)
    assert result.err.startswith("queuectl: error: ") and result.err.count("\n") == 1
