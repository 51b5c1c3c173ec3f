"""What a job sees of the worker's environment, and QUEUECTL_JOB_ENV_* validation (no Redis)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from queuectl.core.errors import EXIT_INVALID, InvalidInputError
from queuectl.core.settings import DEFAULT_JOB_ENV_ALLOW, load_settings
from queuectl.worker.jobenv import base_env, default_base_env, filter_env, job_env

WORKER_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/q", "USER": "q", "LOGNAME": "q", "SHELL": "/bin/sh",
    "HOSTNAME": "worker-0", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "LC_TIME": "C",
    "TZ": "UTC", "TMPDIR": "/tmp/q",
    "QUEUECTL_REDIS_URL": "redis://alice:hunter2@redis:6379/0", "QUEUECTL_KEY_PREFIX": "q",
    "QUEUECTL_JOB_ID": "forged", "QUEUECTL_JOB_ATTEMPT": "99",
    "AWS_SECRET_ACCESS_KEY": "wJalr", "AWS_REGION": "eu-west-1", "GITHUB_TOKEN": "ghp_x",
    "KUBERNETES_SERVICE_HOST": "10.0.0.1", "REDIS_PORT": "tcp://10.0.0.7:6379",
    "HTTPS_PROXY": "http://user:pw@proxy:3128", "lc_lower": "x",
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("QUEUECTL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def test_the_default_passes_the_basics_and_no_secret() -> None:
    env = filter_env(WORKER_ENV, DEFAULT_JOB_ENV_ALLOW)
    assert env == {name: WORKER_ENV[name] for name in (
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "LANG", "LC_ALL", "LC_TIME",
        "TZ", "TMPDIR")}


def test_settings_default_is_the_documented_list() -> None:
    settings = load_settings()
    assert tuple(settings.job_env_allow) == DEFAULT_JOB_ENV_ALLOW
    assert settings.job_env_deny == []
    assert base_env(settings, WORKER_ENV) == filter_env(WORKER_ENV, DEFAULT_JOB_ENV_ALLOW)


def test_star_passes_everything_but_queuectl_settings() -> None:
    env = filter_env(WORKER_ENV, ["*"])
    assert not [name for name in env if name.startswith("QUEUECTL_")]
    assert env["AWS_SECRET_ACCESS_KEY"] == "wJalr"
    assert len(env) == len([n for n in WORKER_ENV if not n.startswith("QUEUECTL_")])


def test_deny_applies_after_allow() -> None:
    env = filter_env(WORKER_ENV, ["*"], ["AWS_SECRET*", "*_TOKEN", "*PROXY", "KUBERNETES_*",
                                          "REDIS_[PS]*"])
    assert "AWS_REGION" in env and "PATH" in env
    for gone in ("AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "HTTPS_PROXY",
                 "KUBERNETES_SERVICE_HOST", "REDIS_PORT"):
        assert gone not in env


def test_globs_are_case_sensitive() -> None:
    assert filter_env(WORKER_ENV, ["lc_*"]) == {"lc_lower": "x"}
    assert filter_env(WORKER_ENV, ["AWS_?EGION", "[LT]Z"]) == {"AWS_REGION": "eu-west-1",
                                                                "TZ": "UTC"}


def test_job_facts_are_added_last_and_cannot_be_forged() -> None:
    base = filter_env(WORKER_ENV, ["*"])
    env = job_env(base, "job-1", "reports", 2)
    assert env["QUEUECTL_JOB_ID"] == "job-1"
    assert env["QUEUECTL_JOB_QUEUE"] == "reports"
    assert env["QUEUECTL_JOB_ATTEMPT"] == "2"
    assert {n for n in env if n.startswith("QUEUECTL_")} == {
        "QUEUECTL_JOB_ID", "QUEUECTL_JOB_QUEUE", "QUEUECTL_JOB_ATTEMPT"}
    assert "QUEUECTL_JOB_ID" not in base  # the base itself carries none


def test_default_base_env_without_settings_is_filtered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_REDIS_URL", "redis://:hunter2@h")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalr")
    monkeypatch.setenv("TZ", "Europe/Paris")
    env = default_base_env()
    assert "QUEUECTL_REDIS_URL" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["TZ"] == "Europe/Paris"


@pytest.mark.parametrize(("allow", "deny", "expected_allow", "expected_deny"), [
    ("PATH,HOME", None, ["PATH", "HOME"], []),
    (" PATH , LC_* ", " AWS_* ", ["PATH", "LC_*"], ["AWS_*"]),
    ("*", "*SECRET*,*TOKEN*", ["*"], ["*SECRET*", "*TOKEN*"]),
    ("", None, [], []),  # nothing passes: a job gets only its QUEUECTL_JOB_* facts
    ("[!A]B?,my.var,my-var", "", ["[!A]B?", "my.var", "my-var"], []),
])
def test_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch, allow: str,
                                    deny: str | None, expected_allow: list[str],
                                    expected_deny: list[str]) -> None:
    monkeypatch.setenv("QUEUECTL_JOB_ENV_ALLOW", allow)
    if deny is not None:
        monkeypatch.setenv("QUEUECTL_JOB_ENV_DENY", deny)
    settings = load_settings()
    assert settings.job_env_allow == expected_allow
    assert settings.job_env_deny == expected_deny


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("QUEUECTL_JOB_ENV_ALLOW", "PATH,,HOME", "empty name in the list"),
    ("QUEUECTL_JOB_ENV_ALLOW", "PATH,", "empty name in the list"),
    ("QUEUECTL_JOB_ENV_DENY", ",AWS_*", "empty name in the list"),
    ("QUEUECTL_JOB_ENV_ALLOW", "LC_[", "invalid name or pattern 'LC_['"),
    ("QUEUECTL_JOB_ENV_ALLOW", "A]", "invalid name or pattern 'A]'"),
    ("QUEUECTL_JOB_ENV_ALLOW", "FOO=bar", "invalid name or pattern 'FOO=bar'"),
    ("QUEUECTL_JOB_ENV_DENY", "AWS KEY", "invalid name or pattern 'AWS KEY'"),
    ("QUEUECTL_JOB_ENV_DENY", "$HOME", "invalid name or pattern '$HOME'"),
    ("QUEUECTL_JOB_ENV_ALLOW", "PATH,QUEUECTL_REDIS_URL", "never passed to jobs"),
    ("QUEUECTL_JOB_ENV_ALLOW", "QUEUECTL_*", "never passed to jobs"),
])
def test_bad_lists_are_one_line(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                reason: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInputError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(f"invalid environment {name}: ")
    assert reason in message
    assert "\n" not in message
    assert info.value.exit_code == EXIT_INVALID


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_run_gets_its_own_trace_context_never_the_workers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker's own TRACEPARENT (the context it was started in) never reaches a job,
    even with everything allowed; the run's context replaces both variables of the job's
    own env, so a TRACESTATE never pairs with another traceparent."""
    monkeypatch.setenv("QUEUECTL_JOB_ENV_ALLOW", "*")
    base = base_env(load_settings(), {**WORKER_ENV, "TRACEPARENT": "00-worker",
                                      "TRACESTATE": "w=1"})
    assert "TRACEPARENT" not in base and "TRACESTATE" not in base
    own = {"TRACEPARENT": "mine", "TRACESTATE": "mine=1"}
    assert job_env(base, "j", "q", 1, own)["TRACEPARENT"] == "mine"  # no context: its own
    env = job_env(base, "j", "q", 1, own, {"TRACEPARENT": TRACEPARENT})
    assert env["TRACEPARENT"] == TRACEPARENT and "TRACESTATE" not in env
    env = job_env(base, "j", "q", 1, None, {"TRACEPARENT": TRACEPARENT, "TRACESTATE": "v=2"})
    assert (env["TRACEPARENT"], env["TRACESTATE"]) == (TRACEPARENT, "v=2")
    assert env["QUEUECTL_JOB_ID"] == "j"
