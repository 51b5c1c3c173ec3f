"""QueueCTL end to end against a Redis that guards itself: TLS with a private CA, and a
password full of URL syntax. Real ``queuectl``, ``queuectl-worker`` and ``queuectl-scheduler``
processes run jobs to success, through a retry and into the DLQ; no output or file ever
shows the password.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.procs import Proc, Procs, eventually
from tests.secure_servers import (
    HOSTILE_PASSWORD,
    HOSTILE_USER,
    GuardedRedis,
    TlsFiles,
    assert_files_hidden,
    assert_hidden,
)

from .helpers import Cli, Result, assert_error, assert_ok

WRONG_PASSWORD = "wr0ng:p@ss/w%rd#"
NO_SCRIPTS_USER = "no-scripts"


@dataclass
class Session:
    """One guarded server as a user reaches it, and everything QueueCTL printed meanwhile."""

    server: GuardedRedis
    url: str
    cli: Cli
    base_env: dict[str, str]
    printed: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return self.base_env | {"QUEUECTL_REDIS_URL": self.url}

    def run(self, *args: str, url: str | None = None) -> Result:
        result: Result = self.cli(*args, env=self.base_env | {
            "QUEUECTL_REDIS_URL": url or self.url})
        self.printed += [result.out, result.err]
        return result


@pytest.fixture(params=["tls", "password"])
def guarded(request: pytest.FixtureRequest, cli: Cli, env: dict[str, str],
            tls_redis: GuardedRedis, hostile_redis: GuardedRedis) -> Iterator[Session]:
    """rediss:// with the CA and an ACL user, or redis:// with the default user's password."""
    quick = env | {"QUEUECTL_POLICY__BACKOFF_BASE": "0.2", "QUEUECTL_POLICY__BACKOFF_FACTOR": "1",
                   "QUEUECTL_LOG_LEVEL": "DEBUG", "QUEUECTL_LOG_TARGET": "both"}
    if request.param == "tls":
        tls_redis.add_user(HOSTILE_USER, HOSTILE_PASSWORD)
        session = Session(tls_redis, tls_redis.url(HOSTILE_USER, HOSTILE_PASSWORD), cli, quick)
    else:
        session = Session(hostile_redis, hostile_redis.url(None, HOSTILE_PASSWORD), cli, quick)
    yield session
    for text in session.printed:
        assert_hidden(text, HOSTILE_PASSWORD, WRONG_PASSWORD, where="CLI output")


def stop(proc: Proc) -> None:
    proc.signal()
    assert proc.wait_exit() == 0
    assert "Traceback" not in proc.stderr()


def show(session: Session, job_id: str) -> dict[str, object]:
    shown: dict[str, object] = json.loads(assert_ok(session.run("show", job_id, "--json")))
    return shown


def test_jobs_succeed_retry_and_die_without_the_password_showing(
    guarded: Session, procs: Procs, tmp_path: Path
) -> None:
    overrides = {k: v for k, v in guarded.env.items() if k.startswith("QUEUECTL_")}
    worker, scheduler = procs.worker(overrides), procs.scheduler(overrides)
    marker = tmp_path / "flaky.ran-once"
    flaky = f"if [ -e {marker} ]; then echo second; else touch {marker}; echo first; exit 1; fi"
    # The worker may take the job before enqueue prints its state: "ok pending" or later.
    assert assert_ok(guarded.run("enqueue", "--id", "ok", "--", "echo fine")).startswith("ok ")
    assert_ok(guarded.run("enqueue", "--id", "flaky", "--max-retries", "2", "--", flaky))
    assert_ok(guarded.run("enqueue", "--id", "doomed", "--max-retries", "1", "--",
                          "echo doomed; exit 3"))

    waited = guarded.run("wait", "ok", "flaky", "doomed", "--timeout", "60")
    assert (waited.code, waited.out) == (1, "ok completed\nflaky completed\ndoomed dead\n"), \
        (waited.out, waited.err, worker.stderr()[-2000:], scheduler.stderr()[-2000:])

    assert {k: show(guarded, "ok")[k] for k in ("state", "attempts")} == {
        "state": "completed", "attempts": 1}
    assert {k: show(guarded, "flaky")[k] for k in ("state", "attempts")} == {
        "state": "completed", "attempts": 2}
    assert {k: show(guarded, "doomed")[k] for k in ("state", "attempts", "exit_code")} == {
        "state": "dead", "attempts": 2, "exit_code": 3}
    logs = assert_ok(guarded.run("logs", "flaky"))
    assert "first" in logs and "second" in logs
    assert [job["id"] for job in json.loads(assert_ok(guarded.run("dlq", "list", "--json")))] \
        == ["doomed"]
    status = json.loads(assert_ok(guarded.run("status", "--json")))
    assert len(status["workers"]) == 1 and len(status["schedulers"]) == 1
    redis_status = json.loads(assert_ok(guarded.run("redis", "status", "--json")))
    assert redis_status["kind"] == "external" and redis_status["info"]["redis_version"]
    assert ":***@127.0.0.1:" in redis_status["url"]

    stop(worker)
    stop(scheduler)
    # Every file the test's processes wrote (their stdout and stderr, job logs), and the server's.
    assert assert_files_hidden(tmp_path, HOSTILE_PASSWORD) >= 7
    assert_files_hidden(guarded.server.workdir, HOSTILE_PASSWORD)


def test_a_wrong_password_is_one_line_and_exit_6(guarded: Session) -> None:
    user = HOSTILE_USER if guarded.server.tls else None
    wrong = guarded.server.url(user, WRONG_PASSWORD)
    for args in (["status"], ["enqueue", "--", "true"], ["redis", "status"]):
        assert_error(guarded.run(*args, url=wrong), 6, "refused the credentials",
                     f"{guarded.server.port}")


def test_no_password_is_one_line_and_exit_6(cli: Cli, env: dict[str, str],
                                            hostile_redis: GuardedRedis) -> None:
    result = cli("list", env=env | {"QUEUECTL_REDIS_URL": hostile_redis.url()})
    assert_error(result, 6, "refused the credentials")
    assert_hidden(result.err, HOSTILE_PASSWORD)


# -- TLS ------------------------------------------------------------------------------------------
def test_tls_needs_the_ca(cli: Cli, env: dict[str, str], tls_redis: GuardedRedis) -> None:
    no_ca = tls_redis.url(ca=False)
    line = assert_error(cli("status", env=env | {"QUEUECTL_REDIS_URL": no_ca}), 6,
                        f"cannot reach Redis at rediss://127.0.0.1:{tls_redis.port}/0")
    assert "certificate verify failed" in line
    plain = f"redis://127.0.0.1:{tls_redis.port}/0"
    assert_error(cli("status", env=env | {"QUEUECTL_REDIS_URL": plain}), 6, "cannot reach Redis")


def test_tls_with_client_certificates(cli: Cli, env: dict[str, str], tls_files: TlsFiles,
                                      tmp_path: Path) -> None:
    server = GuardedRedis(tmp_path / "mtls", tls=tls_files, client_certs=True).start()
    try:
        with_cert = env | {"QUEUECTL_REDIS_URL": server.url(client_cert=True)}
        assert assert_ok(cli("enqueue", "--id", "m", "--", "true", env=with_cert)) \
            == "m pending\n"
        shown = json.loads(assert_ok(cli("redis", "status", "--json", env=with_cert)))
        assert f"ssl_certfile={tls_files.client_cert}" in shown["url"]
        assert "ssl_keyfile=***" in shown["url"]  # a key's path is not secret, but masked
        without = env | {"QUEUECTL_REDIS_URL": server.url()}
        assert_error(cli("list", env=without), 6, "cannot reach Redis at rediss://")
    finally:
        server.stop()


# -- services given bad credentials: what they do today (see the issue note) -----------------------
def test_services_with_a_wrong_password(procs: Procs, hostile_redis: GuardedRedis) -> None:
    """Every service stops with one line and exit 6."""
    wrong = {"QUEUECTL_REDIS_URL": hostile_redis.url("default", WRONG_PASSWORD)}
    scheduler, worker = procs.scheduler(wrong), procs.worker(wrong)
    assert scheduler.wait_exit() == 6
    errors = [line for line in scheduler.stderr().splitlines() if " INFO " not in line]
    assert len(errors) == 1 and errors[0].startswith("queuectl-scheduler: error: Redis at "
                                                     "redis://default:***@"), errors
    assert "refused the credentials" in errors[0]

    # Every service: one line and exit 6 (was: the worker retried forever).
    assert worker.wait_exit() == 6
    worker_errors = [line for line in worker.stderr().splitlines() if " INFO " not in line]
    assert len(worker_errors) == 1 and "refused the credentials" in worker_errors[0]
    for proc in (scheduler, worker):
        assert "Traceback" not in proc.stderr()
        assert_hidden(proc.stderr() + proc.stdout().decode(), WRONG_PASSWORD, HOSTILE_PASSWORD)


@pytest.fixture
def no_scripts_url(hostile_redis: GuardedRedis) -> str:
    """An ACL user that may run every command but EVALSHA (and EVAL)."""
    hostile_redis.add_user(NO_SCRIPTS_USER, HOSTILE_PASSWORD,
                           commands="+@all -evalsha -eval")
    return hostile_redis.url(NO_SCRIPTS_USER, HOSTILE_PASSWORD)


def test_an_acl_user_without_evalsha(cli: Cli, env: dict[str, str], procs: Procs,
                                     no_scripts_url: str) -> None:
    """Reads work, every state change is refused; nothing shows the password."""
    denied = env | {"QUEUECTL_REDIS_URL": no_scripts_url}
    assert assert_ok(cli("list", env=denied)) == "no jobs\n"
    result = cli("enqueue", "--", "true", env=denied)
    assert_error(result, 6, "Redis at redis://no-scripts:***@", "refused a command", "'evalsha'")
    assert_hidden(result.err, HOSTILE_PASSWORD)

    overrides = {"QUEUECTL_REDIS_URL": no_scripts_url}
    worker, scheduler = procs.worker(overrides), procs.scheduler(overrides)
    assert worker.wait_exit() == 6
    assert scheduler.wait_exit() == 6
    assert "'evalsha'" in scheduler.stderr()
    for proc in (worker, scheduler):
        assert_hidden(proc.stderr() + proc.stdout().decode(), HOSTILE_PASSWORD)


def test_worker_without_evalsha_fails_with_one_line(procs: Procs, no_scripts_url: str) -> None:
    worker = procs.worker({"QUEUECTL_REDIS_URL": no_scripts_url})
    assert worker.wait_exit() == 6
    assert "Traceback" not in worker.stderr()


def test_scheduler_without_evalsha_fails_at_start(procs: Procs, no_scripts_url: str) -> None:
    scheduler = procs.scheduler({"QUEUECTL_REDIS_URL": no_scripts_url})
    eventually(lambda: "'evalsha'" in scheduler.stderr() or not scheduler.alive(), 30,
               what="the scheduler meets the refusal")
    assert scheduler.wait_exit(timeout=8) == 6
