"""Settings from the environment, and load_settings' one-line errors (no Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuectl.core.errors import EXIT_INVALID, InvalidInputError
from queuectl.core.settings import LogTarget, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Nothing from the caller's environment leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("QUEUECTL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def test_defaults(tmp_path: Path) -> None:
    s = load_settings()
    assert s.redis_url is None  # the embedded default
    assert s.key_prefix == "queuectl"
    assert s.queues == ["default"]
    assert s.log_target is LogTarget.FILE
    assert s.data_dir == tmp_path / "xdg" / "queuectl"
    assert s.resolved_log_dir == s.data_dir / "logs"
    assert s.scheduler_interval == 1.0
    assert s.policy.max_retries == 3
    assert s.policy.backoff_base == 2.0 and s.policy.backoff_factor == 2.0


@pytest.mark.parametrize(("raw", "queues"), [
    ("a,b", ["a", "b"]),
    ("high, default ,low", ["high", "default", "low"]),
    ("a,b,", ["a", "b"]),
    ("only", ["only"]),
])
def test_queues_are_a_comma_list_in_priority_order(raw: str, queues: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_QUEUES", raw)
    assert load_settings().queues == queues


@pytest.mark.parametrize(("raw", "reason"), [
    ("a b", "invalid queue name 'a b'"),
    ("ok,bad/name", "invalid queue name 'bad/name'"),
    ("a,a", "queue names repeat"),
    ("", "at least one queue is required"),
    (" , ", "at least one queue is required"),
    ("x" * 129, f"invalid queue name '{'x' * 129}'"),
])
def test_invalid_queues_give_one_line(raw: str, reason: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_QUEUES", raw)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == f"invalid environment QUEUECTL_QUEUES: {reason}"
    assert caught.value.exit_code == EXIT_INVALID


@pytest.mark.parametrize("value", ["file", "stdout", "both"])
def test_log_target_values(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_LOG_TARGET", value)
    assert load_settings().log_target == LogTarget(value)


@pytest.mark.parametrize("value", ["syslog", "", "files"])
def test_invalid_log_target(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_LOG_TARGET", value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == (
        "invalid environment QUEUECTL_LOG_TARGET: must be 'file', 'stdout' or 'both'"
    )


def test_scalar_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "REDIS_URL": "rediss://user:secret@redis.example:6380/2",
        "KEY_PREFIX": "{qc}",
        "CONCURRENCY": "16",
        "LOG_DIR": str(tmp_path / "logs"),
        "METRICS_PORT": "9100",
        "SCHEDULER_INTERVAL": "0.25",
        "SCHEDULER_BATCH": "50",
        "HEARTBEAT_INTERVAL": "0.5",
        "WORKER_TTL": "3",
    }.items():
        monkeypatch.setenv(f"QUEUECTL_{name}", value)
    s = load_settings()
    assert s.redis_url == "rediss://user:secret@redis.example:6380/2"
    assert s.key_prefix == "{qc}"
    assert s.concurrency == 16
    assert s.resolved_log_dir == tmp_path / "logs"
    assert s.metrics_port == 9100
    assert (s.scheduler_interval, s.scheduler_batch) == (0.25, 50)
    assert (s.heartbeat_interval, s.worker_ttl) == (0.5, 3.0)


def test_policy_defaults_from_nested_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_POLICY__MAX_RETRIES", "5")
    monkeypatch.setenv("QUEUECTL_POLICY__BACKOFF_BASE", "0.5")
    monkeypatch.setenv("QUEUECTL_POLICY__COMPLETED_TTL", "0")
    s = load_settings()
    assert s.policy.max_retries == 5
    assert s.policy.backoff_base == 0.5
    assert s.policy.completed_ttl == 0
    assert s.policy.backoff_factor == 2.0


@pytest.mark.parametrize(("name", "value", "message"), [
    ("QUEUECTL_CONCURRENCY", "many",
     "invalid environment QUEUECTL_CONCURRENCY: must be a whole number"),
    ("QUEUECTL_CONCURRENCY", "1.5",
     "invalid environment QUEUECTL_CONCURRENCY: must be a whole number"),
    ("QUEUECTL_CONCURRENCY", "0",
     "invalid environment QUEUECTL_CONCURRENCY: must be at least 1"),
    ("QUEUECTL_KEY_PREFIX", "a b",
     "invalid environment QUEUECTL_KEY_PREFIX: key prefix must not contain white space"),
    ("QUEUECTL_POLICY__MAX_RETRIES", "-1",
     "invalid environment QUEUECTL_POLICY__MAX_RETRIES: must be at least 0"),
    ("QUEUECTL_SCHEDULER_INTERVAL", "0",
     "invalid environment QUEUECTL_SCHEDULER_INTERVAL: must be at least 0.01"),
    ("QUEUECTL_LOG_LEVEL", "loud",
     "invalid environment QUEUECTL_LOG_LEVEL: must be one of debug, info, warning, error"),
    ("QUEUECTL_KEY_PREFIX", "",
     "invalid environment QUEUECTL_KEY_PREFIX: must not be empty"),
    ("QUEUECTL_METRICS_PORT", "70000",
     "invalid environment QUEUECTL_METRICS_PORT: must be at most 65535"),
])
def test_errors_name_the_variable_to_fix(name: str, value: str, message: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == message


def test_settings_are_built_when_asked_not_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_KEY_PREFIX", "first")
    assert Settings().key_prefix == "first"
    monkeypatch.setenv("QUEUECTL_KEY_PREFIX", "second")
    assert Settings().key_prefix == "second"


DURATIONS = ["HEARTBEAT_INTERVAL", "WORKER_TTL", "IDLE_WAIT", "SCHEDULER_INTERVAL",
             "SHUTDOWN_GRACE", "KILL_GRACE"]


@pytest.mark.parametrize("name", DURATIONS)
@pytest.mark.parametrize(("value", "reason"), [
    ("inf", "must be a finite number"),
    ("-inf", "must be a finite number"),
    ("nan", "must be a finite number"),
    ("1e300", "must be at most"),
    ("-1", "must be at least"),
])
def test_every_duration_is_finite_and_bounded(name: str, value: str, reason: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"QUEUECTL_{name}", value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid environment QUEUECTL_{name}: {reason}"), message
    assert caught.value.exit_code == EXIT_INVALID


@pytest.mark.parametrize("name", ["HEARTBEAT_INTERVAL", "IDLE_WAIT", "SCHEDULER_INTERVAL"])
def test_intervals_have_a_floor_against_busy_loops(name: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"QUEUECTL_{name}", "1e-300")
    with pytest.raises(InvalidInputError, match=r"must be at least 0\.01"):
        load_settings()


def test_worker_ttl_must_outlast_a_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_HEARTBEAT_INTERVAL", "5")
    monkeypatch.setenv("QUEUECTL_WORKER_TTL", "5")
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == ("invalid environment: QUEUECTL_WORKER_TTL (5) must be greater "
                                 "than QUEUECTL_HEARTBEAT_INTERVAL (5)")


@pytest.mark.parametrize("value", ["w\x1b[31mred", "w\nfake", "a b", "w/1", "x" * 129, "wé",
                                   "\u202ew"])
def test_worker_id_is_an_id(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_WORKER_ID", value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == ("invalid environment QUEUECTL_WORKER_ID: not a usable id: "
                                 "use 1-128 characters of A-Z a-z 0-9 . _ -")


def test_worker_id_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_WORKER_ID", "pod-7.worker_1")
    assert load_settings().worker_id == "pod-7.worker_1"
    monkeypatch.setenv("QUEUECTL_WORKER_ID", "")
    assert load_settings().worker_id is None  # empty in a manifest means unset


def test_a_value_that_is_not_json_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_POLICY", "{not json")
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == ("invalid environment QUEUECTL_POLICY: not valid JSON (set "
                                 "QUEUECTL_POLICY__<KEY> variables one by one instead)")


def test_log_format_and_trace_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    from queuectl.core.settings import LogFormat, TraceMode

    settings = load_settings()
    assert (settings.log_format, settings.trace_mode) == (LogFormat.TEXT, TraceMode.PARENT)
    monkeypatch.setenv("QUEUECTL_LOG_FORMAT", "json")
    monkeypatch.setenv("QUEUECTL_TRACE_MODE", "link")
    settings = load_settings()
    assert (settings.log_format, settings.trace_mode) == (LogFormat.JSON, TraceMode.LINK)


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("LOG_FORMAT", "xml", "must be 'text' or 'json'"),
    ("LOG_FORMAT", "", "must be 'text' or 'json'"),
    ("TRACE_MODE", "child", "must be 'parent' or 'link'"),
])
def test_invalid_log_format_and_trace_mode(name: str, value: str, reason: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"QUEUECTL_{name}", value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    assert str(caught.value) == f"invalid environment QUEUECTL_{name}: {reason}"
