"""policy: the runtime keys of P:config, their validation and stored form (no Redis)."""

from __future__ import annotations

import pytest

from queuectl.core import policy
from queuectl.core.errors import InvalidInputError
from queuectl.core.settings import PolicyDefaults


@pytest.mark.parametrize(("name", "raw", "stored"), [
    ("max-retries", "0", "0"),
    ("max-retries", "3", "3"),
    ("max-retries", " 5 ", "5"),
    ("backoff-base", "2", "2"),
    ("backoff-base", "2.0", "2"),
    ("backoff-base", "0.5", "0.5"),
    ("backoff-base", "1e-3", "0.001"),
    ("backoff-factor", "1", "1"),
    ("backoff-factor", "1.5", "1.5"),
    ("backoff-max", "0", "0"),
    ("backoff-max", "300", "300"),
    ("job-timeout", "0", "0"),
    ("job-timeout", "90.25", "90.25"),
    ("completed-ttl", "0", "0"),
    ("completed-ttl", "86400", "86400"),
    # Durations wherever a time is taken.
    ("job-timeout", "10m", "600"),
    ("completed-ttl", "7d", "604800"),
    ("backoff-base", "500ms", "0.5"),
    ("backoff-max", "1h30m", "5400"),
    ("backoff-jitter", "0.2", "0.2"),
])
def test_valid_values_are_normalised(name: str, raw: str, stored: str) -> None:
    assert policy.normalise(name, raw) == stored


@pytest.mark.parametrize(("name", "raw", "reason"), [
    ("max-retries", "-1", "value must be >= 0, got -1"),
    ("max-retries", "1.5", "'1.5' is not a whole number"),
    ("max-retries", "three", "'three' is not a whole number"),
    ("max-retries", "", "'' is not a whole number"),
    ("backoff-base", "0", "value must be > 0, got 0"),
    ("backoff-base", "-2", "value must be > 0, got -2"),
    ("backoff-base", "abc",
     "'abc' is not a number of seconds or a duration (e.g. 500ms, 90s, 5m, 1h30m, 7d)"),
    ("backoff-base", "inf", "'inf' is not a finite number"),
    ("backoff-base", "nan", "'nan' is not a finite number"),
    ("backoff-factor", "0.5", "value must be >= 1, got 0.5"),
    ("backoff-max", "-1", "value must be >= 0, got -1"),
    ("job-timeout", "-0.1", "value must be >= 0, got -0.1"),
    ("job-timeout", "1e999", "'1e999' is not a finite number"),
    ("completed-ttl", "1.5", "'1.5' is not a whole number of seconds"),
    ("completed-ttl", "-5", "value must be >= 0, got -5"),
    # What cannot be honoured is refused: retries due at inf, an EXPIRE that overflows.
    ("backoff-base", "1e300", "value must be <= 2592000, got 1e300"),
    ("backoff-factor", "1e308", "value must be <= 100, got 1e308"),
    ("backoff-max", "1e10", "value must be <= 2592000, got 1e10"),
    ("completed-ttl", "10000000000000000", "value must be <= 315360000, got 10000000000000000"),
    ("job-timeout", "1e7", "value must be <= 2592000, got 1e7"),
    ("max-lost", "0", "value must be >= 1, got 0"),
    ("max-retries", "1_0", "'1_0' is not a whole number"),
    ("backoff-base", "0x10",
     "'0x10' is not a number of seconds or a duration (e.g. 500ms, 90s, 5m, 1h30m, 7d)"),
    ("max-retries", "5m", "'5m' is not a whole number"),
    ("backoff-jitter", "2", "value must be <= 1, got 2"),
    ("job-timeout", "1e-300", "value must be 0 or at least 0.001, got 1e-300"),
    ("backoff-base", "0.0001", "value must be 0 or at least 0.001, got 0.0001"),
])
def test_invalid_values_are_refused_with_one_line(name: str, raw: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        policy.normalise(name, raw)
    assert str(caught.value) == f"invalid value for {name}: {reason}"


@pytest.mark.parametrize("name", ["max_retries", "retries", "", "MAX-RETRIES", "log-dir"])
def test_unknown_keys_name_the_known_ones(name: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        policy.normalise(name, "1")
    message = str(caught.value)
    assert message.startswith(f"unknown config key {name!r} (known: max-retries, ")
    assert "completed-ttl" in message


def test_the_contract_keys_exist() -> None:
    assert {"max-retries", "backoff-base", "backoff-factor", "backoff-max",
            "job-timeout"} <= set(policy.POLICY_KEYS)


def test_default_values_come_from_the_settings_defaults() -> None:
    defaults = PolicyDefaults(max_retries=4, backoff_base=0.5, backoff_factor=3.0,
                              backoff_max=60.0, job_timeout=0.0, completed_ttl=10,
                              max_lost=5, dead_ttl=3600, dead_max=50)
    assert {name: policy.default_value(name, defaults) for name in policy.POLICY_KEYS} == {
        "max-retries": "4", "backoff-base": "0.5", "backoff-factor": "3",
        "backoff-max": "60", "job-timeout": "0", "completed-ttl": "10", "max-lost": "5",
        "backoff-jitter": "0", "dead-ttl": "3600", "dead-max": "50",
    }
    # The documented defaults: the note's 3 retries, 2 s, factor 2.
    plain = PolicyDefaults()
    assert policy.default_value("max-retries", plain) == "3"
    assert policy.default_value("backoff-base", plain) == "2"
    assert policy.default_value("backoff-factor", plain) == "2"
    # The DLQ's bound, Sidekiq's dead set's count: 10,000 jobs, kept 30 days.
    assert policy.default_value("dead-max", plain) == "10000"
    assert policy.default_value("dead-ttl", plain) == "2592000"


def test_every_normalised_value_parses_back_to_itself() -> None:
    for name, raw in [("backoff-base", "0.1"), ("job-timeout", "1e-3"), ("max-retries", "07")]:
        stored = policy.normalise(name, raw)
        assert policy.normalise(name, stored) == stored
