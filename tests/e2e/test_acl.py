"""Least-privilege ACLs, proven: every service works under exactly the ACL that
``queuectl acl SERVICE`` prints, and a permission taken away is one clear line,
exit 6, and no partial state."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from queuectl.core import acl
from queuectl.core.client import Client
from queuectl.core.health import Health
from queuectl.core.lua import script_names, script_source
from queuectl.core.settings import Settings
from queuectl.worker.janitor import LogJanitor
from queuectl.worker.logdir import LogDir
from tests.integration.procs import Procs, eventually
from tests.secure_servers import GuardedRedis

from .helpers import Cli, assert_error, assert_ok

PASSWORD = "acl-pw"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedRedis]:
    server = GuardedRedis(tmp_path_factory.mktemp("acl-redis")).start()
    yield server
    server.stop()


def user_url(server: GuardedRedis, prefix: str, service: str, *without: str) -> str:
    """A fresh ACL user with exactly ``service``'s rules (minus ``without``)."""
    name = f"{service}-{uuid.uuid4().hex[:6]}"
    with server.admin() as admin:
        admin.execute_command("ACL", "SETUSER",
                              *acl.setuser(service, prefix, name, PASSWORD, without))
    return server.url(name, PASSWORD)


def denials(server: GuardedRedis) -> list[str]:
    with server.admin() as admin:
        entries = admin.execute_command("ACL", "LOG")
    out = []
    for entry in entries:
        fields = dict(zip(entry[::2], entry[1::2], strict=True))
        out.append(f"{fields['username']}: {fields['object']} ({fields['reason']})")
    return out


def snapshot(server: GuardedRedis, prefix: str, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    r = redis.Redis.from_url(server.admin_url())
    try:
        names = sorted(k.decode() for k in r.scan_iter(match=f"{prefix}:*"))
        return {k: r.dump(k) for k in names if not k.startswith(skip)}  # type: ignore[misc]
    finally:
        r.close()


def plant_dead_worker(server: GuardedRedis, prefix: str) -> None:
    """A job ``held`` by a worker that died (registered long ago, no status hash)."""
    with server.admin() as admin:
        admin.hset(f"{prefix}:jobs:held", mapping={
            "id": "held", "command": "true", "queue": "default", "state": "processing",
            "attempts": "1", "lease": "1", "worker": "dead", "log_size": "0"})
        admin.sadd(f"{prefix}:inflight:dead", "held")
        admin.zadd(f"{prefix}:workers", {"dead": 1})


def test_every_command_a_script_runs_is_in_the_acl_lists(guarded: GuardedRedis) -> None:
    with guarded.admin() as admin:
        known = {str(c).lower() for c in admin.command_list()}
    for name in script_names():
        used = {t.lower() for t in re.findall(r"'([A-Z]+)'", script_source(name))} & known
        assert used == set(acl.SCRIPT_COMMANDS[name]), name
    for service, scripts in acl.SCRIPTS.items():
        assert set(scripts) <= set(script_names()), service


def test_every_service_works_under_exactly_its_acl(cli: Cli, env: dict[str, str], procs: Procs,
                                                   guarded: GuardedRedis) -> None:
    prefix = env["QUEUECTL_KEY_PREFIX"]
    with guarded.admin() as admin:
        admin.execute_command("ACL", "LOG", "RESET")
    urls = {s: user_url(guarded, prefix, s) for s in acl.SERVICES}
    as_cli = env | {"QUEUECTL_REDIS_URL": urls["cli"]}

    def run(*args: str, stdin: str | None = None) -> str:
        return assert_ok(cli(*args, env=as_cli, input=stdin))

    run("config", "set", "backoff-base", "0.2")
    run("config", "set", "max-retries", "1")
    procs.scheduler({"QUEUECTL_REDIS_URL": urls["scheduler"]})
    first = procs.worker({"QUEUECTL_REDIS_URL": urls["worker"], "QUEUECTL_CONCURRENCY": "2"})
    victim = procs.worker({"QUEUECTL_REDIS_URL": urls["worker"], "QUEUECTL_CONCURRENCY": "1",
                           "QUEUECTL_QUEUES": "slow"})
    client_view = redis.Redis.from_url(guarded.admin_url())
    try:
        run("enqueue", "--id", "ok", "--", "echo hi")
        run("enqueue", "--id", "flaky", "--", "exit 3")  # fails, retries, dies
        run("enqueue", "--id", "later", "--delay", "500ms", "--", "true")
        run("enqueue", "--file", "-",
            stdin='{"id":"f1","command":"true"}\n{"id":"f2","command":"true"}\n')
        run("enqueue", "--id", "stuck", "--queue", "slow", "--", "sleep 30")

        def state(job_id: str) -> bytes | None:
            value = client_view.hget(f"{prefix}:jobs:{job_id}", "state")
            return value if isinstance(value, bytes) else None

        eventually(lambda: state("stuck") == b"processing", 30, what="the slow job runs")
        victim.signal(signal.SIGKILL)
        # The scheduler reaps the dead worker: its job is pending again (nobody else
        # listens on "slow").
        eventually(lambda: state("stuck") == b"pending", 60, what="the scheduler reaps")
        run("wait", "ok", "later", "f1", "f2", "--timeout", "60")
        assert cli("wait", "flaky", "--timeout", "60", env=as_cli).code == 1
        run("cancel", "stuck")
        run("dlq", "retry", "flaky")
        assert cli("wait", "flaky", "--timeout", "60", env=as_cli).code == 1
        run("dlq", "purge", "--yes")
        run("enqueue", "--id", "ok", "--replace", "--", "echo again")
        run("wait", "ok", "--timeout", "60")

        # Quarantine and doctor: a record someone broke.
        client_view.hset(f"{prefix}:jobs:ok", "attempts", "abc")
        assert cli("doctor", "--repair", env=as_cli).code == 1  # one job in quarantine now
        assert "ok" in run("quarantine", "list")
        client_view.hset(f"{prefix}:jobs:ok", "attempts", "0")
        run("quarantine", "retry", "ok")
        run("wait", "ok", "--timeout", "60")
        run("enqueue", "--id", "gone", "--", "true")
        run("wait", "gone", "--timeout", "60")

        for args in (["status"], ["status", "--json"], ["list"], ["list", "--queue", "slow"],
                     ["show", "ok"], ["logs", "ok"], ["worker", "list"], ["config", "list"],
                     ["dlq", "list"], ["quarantine", "list"], ["redis", "status"]):
            run(*args)
        assert "healthy" in run("doctor")
        # Retention: the scheduler deletes ended jobs once completed-ttl has passed.
        run("config", "set", "completed-ttl", "1")
        eventually(lambda: not client_view.exists(f"{prefix}:jobs:f1"), 30,
                   what="the scheduler prunes an expired job")
        run("worker", "stop", "--all")
        assert first.wait_exit(timeout=30) == 0
    finally:
        client_view.close()
    assert denials(guarded) == []
    assert json.loads(run("status", "--json"))["problems"] == []


def test_the_log_janitor_works_under_the_workers_acl(env: dict[str, str],
                                                      guarded: GuardedRedis,
                                                      tmp_path: Path) -> None:
    """It runs once a minute: the services' run above ends before its first pass."""
    prefix = env["QUEUECTL_KEY_PREFIX"]
    with guarded.admin() as admin:
        admin.execute_command("ACL", "LOG", "RESET")
    worker = Client.connect(Settings(redis_url=user_url(guarded, prefix, "worker"),
                                     key_prefix=prefix))
    logs = LogDir(tmp_path / "logs")
    logs.open()
    gone = tmp_path / "logs" / "gone.log"
    gone.write_bytes(b"output\n")
    os.utime(gone, (0, 0))
    janitor = LogJanitor(worker.store, logs, set, threading.Event(), Health(150.0), 60.0)
    try:
        assert janitor.sweep() == 1
    finally:
        janitor.close()
        logs.close()
        worker.redis.close()
    assert not gone.exists()
    assert denials(guarded) == []


def test_a_worker_without_a_permission_stops_and_changes_no_job(
        env: dict[str, str], procs: Procs, guarded: GuardedRedis, cli: Cli) -> None:
    prefix = env["QUEUECTL_KEY_PREFIX"]
    admin_env = env | {"QUEUECTL_REDIS_URL": guarded.admin_url()}
    assert_ok(cli("enqueue", "--id", "waiting", "--", "true", env=admin_env))
    before = snapshot(guarded, prefix, skip=(f"{prefix}:worker", f"{prefix}:wake"))
    worker = procs.worker({"QUEUECTL_REDIS_URL": user_url(guarded, prefix, "worker", "sadd")})
    assert worker.wait_exit(timeout=30) == 6
    errors = [line for line in worker.stderr().splitlines() if "error:" in line]
    assert len(errors) == 1 and "NOPERM" in errors[0] and "SADD" in errors[0], errors
    assert "Traceback" not in worker.stderr()
    assert snapshot(guarded, prefix, skip=(f"{prefix}:worker", f"{prefix}:wake")) == before


def test_a_scheduler_without_a_permission_stops_and_changes_no_job(
        env: dict[str, str], procs: Procs, guarded: GuardedRedis, cli: Cli) -> None:
    prefix = env["QUEUECTL_KEY_PREFIX"]
    plant_dead_worker(guarded, prefix)
    # Its own keys (status, registry, the gauges lease) are its to write.
    own = (f"{prefix}:scheduler", f"{prefix}:gauges_lease")
    before = snapshot(guarded, prefix, skip=own)
    url = user_url(guarded, prefix, "scheduler", "lpush")
    scheduler = procs.scheduler({"QUEUECTL_REDIS_URL": url})
    assert scheduler.wait_exit(timeout=30) == 6
    errors = [line for line in scheduler.stderr().splitlines() if "error:" in line]
    assert len(errors) == 1 and "LPUSH" in errors[0], errors
    assert snapshot(guarded, prefix, skip=own) == before


def test_a_scheduler_user_without_info_still_reaps_and_says_what_to_grant(
        env: dict[str, str], procs: Procs, guarded: GuardedRedis) -> None:
    # The scheduler's line of an earlier release had no INFO, which reap asks for
    # Redis's uptime: such a scheduler goes on reaping without that check, and says so.
    prefix = env["QUEUECTL_KEY_PREFIX"]
    plant_dead_worker(guarded, prefix)
    scheduler = procs.scheduler(
        {"QUEUECTL_REDIS_URL": user_url(guarded, prefix, "scheduler", "info")})
    with guarded.admin() as admin:
        eventually(lambda: admin.hget(f"{prefix}:jobs:held", "state") == "pending", 30,
                   what="the dead worker's job handed back")
        assert admin.lrange(f"{prefix}:jobs", 0, -1) == ["held"]
    eventually(lambda: "INFO refused" in scheduler.stderr(), 10, what="the note")
    note = [line for line in scheduler.stderr().splitlines() if "INFO refused" in line]
    assert len(note) == 1 and "queuectl acl scheduler" in note[0], note
    assert scheduler.alive()


def test_the_cli_without_a_permission_is_one_line_and_changes_nothing(
        env: dict[str, str], guarded: GuardedRedis, cli: Cli, tmp_path: Path) -> None:
    prefix = env["QUEUECTL_KEY_PREFIX"]
    admin_env = env | {"QUEUECTL_REDIS_URL": guarded.admin_url()}
    assert_ok(cli("enqueue", "--id", "keep", "--", "true", env=admin_env))
    before = snapshot(guarded, prefix)
    limited = env | {"QUEUECTL_REDIS_URL": user_url(guarded, prefix, "cli", "zadd")}
    assert_error(cli("cancel", "keep", env=limited), 6, "refused a command", "ZADD")
    assert snapshot(guarded, prefix) == before
    # enqueue_batch checks each job's HSET before its first write.
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"command": "true"}\n' * 3)
    limited = env | {"QUEUECTL_REDIS_URL": user_url(guarded, prefix, "cli", "hset")}
    assert_error(cli("enqueue", "--file", str(jobs), env=limited), 6, "stopped at line 1: ",
                 "HSET", "0 of 3 jobs enqueued")
    # The CLI's line of an earlier release had no EXISTS, which a chunk asks first.
    limited = env | {"QUEUECTL_REDIS_URL": user_url(guarded, prefix, "cli", "exists")}
    assert_error(cli("enqueue", "--file", str(jobs), env=limited), 6, "stopped at line 1: ",
                 "EXISTS", "0 of 3 jobs enqueued")
    assert snapshot(guarded, prefix) == before


def test_the_readme_shows_what_queuectl_acl_prints() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    line = "ACL SETUSER " + " ".join(acl.setuser("worker", "queuectl"))
    assert f"```text\n{line}\n```" in readme
