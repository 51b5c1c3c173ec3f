"""What a job's command sees of its worker's environment: real worker processes running ``env``.

The workers connect with an ACL user whose password is full of URL syntax, so
the password is in their QUEUECTL_REDIS_URL; no job may see it, nor any other
QUEUECTL_* setting, nor a secret the operator did not allow.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from queuectl.core.client import Client
from queuectl.core.models import JobState
from queuectl.core.settings import Settings
from tests.secure_servers import HOSTILE_PASSWORD, HOSTILE_USER, GuardedRedis

from .procs import Procs, wait_ended

SECRETS = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-not-a-real-key",
           "GITHUB_TOKEN": "ghp_not-a-real-token"}
EXTRA = {"TZ": "Europe/Paris", "LC_TIME": "C", "MY_ALLOWED": "yes", "MY_DENIED": "no",
         **SECRETS}
JOB_FACTS = {"QUEUECTL_JOB_ID", "QUEUECTL_JOB_QUEUE", "QUEUECTL_JOB_ATTEMPT", "QUEUECTL_JOB_RUN_ID"}


@pytest.fixture
def hostile_url(hostile_redis: GuardedRedis) -> str:
    hostile_redis.add_user(HOSTILE_USER, HOSTILE_PASSWORD)
    return hostile_redis.url(HOSTILE_USER, HOSTILE_PASSWORD)


@pytest.fixture
def hostile_client(hostile_url: str, key_prefix: str) -> Iterator[Client]:
    c = Client.connect(Settings(redis_url=hostile_url, key_prefix=key_prefix))
    yield c
    c.redis.close()


def job_environment(client: Client, job_id: str) -> dict[str, str]:
    """The environment the job printed with ``env -0``, from its output tail."""
    data = client.logs(job_id).data
    header, _, data = data.partition(b" ---\n")  # the worker's "--- attempt 1 of job ..."
    assert header.startswith(b"--- attempt 1 of job "), header
    pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
    return {name.decode(): value.decode() for name, value in pairs}


def assert_no_password(text: str | bytes) -> None:
    raw = text if isinstance(text, str) else text.decode("utf-8", "replace")
    for form in (HOSTILE_PASSWORD, quote(HOSTILE_PASSWORD, safe="")):
        assert form not in raw


def test_jobs_see_only_what_the_operator_allows(
    procs: Procs, hostile_client: Client, hostile_url: str, env: dict[str, str]
) -> None:
    workers = {
        # The default list: the basics of a shell, no credentials.
        "dflt": procs.worker({"QUEUECTL_REDIS_URL": hostile_url, "QUEUECTL_QUEUES": "dflt",
                              **EXTRA}),
        # An explicit list: names and globs, then a deny list applied after it.
        "listed": procs.worker({"QUEUECTL_REDIS_URL": hostile_url, "QUEUECTL_QUEUES": "listed",
                                "QUEUECTL_JOB_ENV_ALLOW": "PATH,MY_*",
                                "QUEUECTL_JOB_ENV_DENY": "MY_DENIED", **EXTRA}),
        # Everything the worker has, except QueueCTL's own settings.
        "all": procs.worker({"QUEUECTL_REDIS_URL": hostile_url, "QUEUECTL_QUEUES": "all",
                             "QUEUECTL_JOB_ENV_ALLOW": "*", **EXTRA}),
    }
    jobs = {queue: hostile_client.enqueue("env -0", queue=queue, job_id=f"env-{queue}")
            for queue in workers}
    ended = wait_ended(hostile_client, [job.id for job in jobs.values()])
    seen = {}
    for queue, job in jobs.items():
        assert ended[job.id].state is JobState.COMPLETED, ended[job.id]
        seen[queue] = job_environment(hostile_client, job.id)
        queuectl = {name for name in seen[queue] if name.startswith("QUEUECTL_")}
        assert queuectl == JOB_FACTS, queue
        assert seen[queue]["QUEUECTL_JOB_ID"] == job.id
        assert seen[queue]["QUEUECTL_JOB_QUEUE"] == queue
        assert seen[queue]["QUEUECTL_JOB_ATTEMPT"] == "1"
        assert_no_password(hostile_client.logs(job.id).data)
        assert_no_password(Path(env["QUEUECTL_LOG_DIR"], f"{job.id}.log").read_bytes())

    dflt = seen["dflt"]
    assert dflt["PATH"] == env["PATH"]
    assert (dflt["TZ"], dflt["LC_TIME"]) == ("Europe/Paris", "C")
    for name in (*SECRETS, "MY_ALLOWED", "MY_DENIED"):
        assert name not in dflt, name

    listed = seen["listed"]
    # PWD is the shell's own: sh exports it whatever it inherits.
    assert set(listed) - {"PWD"} == {"PATH", "MY_ALLOWED", *JOB_FACTS}

    everything = seen["all"]
    for name, value in EXTRA.items():
        assert everything[name] == value, name

    for proc in workers.values():
        proc.signal()
        assert proc.wait_exit() == 0
        assert_no_password(proc.stderr())
        assert_no_password(proc.stdout())


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("QUEUECTL_JOB_ENV_ALLOW", "PATH,,HOME", "empty name in the list"),
    ("QUEUECTL_JOB_ENV_DENY", "AWS_[", "invalid name or pattern 'AWS_['"),
    ("QUEUECTL_JOB_ENV_ALLOW", "PATH,QUEUECTL_REDIS_URL", "never passed to jobs"),
])
def test_a_bad_list_stops_the_worker_at_start(procs: Procs, name: str, value: str,
                                              reason: str) -> None:
    proc = procs.worker({name: value})
    assert proc.wait_exit() == 3
    lines = proc.stderr().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"queuectl-worker: error: invalid environment {name}: ")
    assert reason in lines[0]


def test_cli_worker_start_filters_too(procs: Procs, hostile_client: Client,
                                      hostile_url: str) -> None:
    """``queuectl worker start`` runs the same code as ``queuectl-worker``."""
    worker = procs.start("queuectl", {"QUEUECTL_REDIS_URL": hostile_url, **SECRETS},
                         ["worker", "start", "--queues", "cli"])
    job = hostile_client.enqueue("env -0", queue="cli", job_id="env-cli")
    assert wait_ended(hostile_client, [job.id])[job.id].state is JobState.COMPLETED
    seen = job_environment(hostile_client, job.id)
    assert {name for name in seen if name.startswith("QUEUECTL_")} == JOB_FACTS
    assert not set(SECRETS) & set(seen)
    worker.signal()
    assert worker.wait_exit() == 0
    assert_no_password(worker.stderr())
    assert_no_password(worker.stdout())
