"""Validation errors are said in QueueCTL's words, never pydantic's."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from queuectl.core.errors import InvalidInputError
from queuectl.core.models import spec_from_json
from queuectl.core.settings import load_settings
from queuectl.core.wording import first, number

PYDANTIC_WORDS = ("Input should", "String should", "valid integer", "valid dictionary",
                  "Value error", "unable to parse")


class Sample(BaseModel):
    whole: int = Field(1, ge=1, le=5)
    ratio: float = Field(1.0, gt=0, lt=2, allow_inf_nan=False)
    name: str = Field("x", min_length=1, max_length=3)


@pytest.mark.parametrize(("data", "said"), [
    ({"whole": 0}, "must be at least 1"),
    ({"whole": 9}, "must be at most 5"),
    ({"whole": "many"}, "must be a whole number"),
    ({"whole": 1.5}, "must be a whole number"),
    ({"ratio": 0}, "must be more than 0"),
    ({"ratio": 2}, "must be less than 2"),
    ({"ratio": "x"}, "must be a number"),
    ({"ratio": "inf"}, "must be a finite number (not inf or nan)"),
    ({"name": ""}, "must not be empty"),
    ({"name": "abcd"}, "must be at most 3 characters"),
    ({"name": 5}, "must be text"),
])
def test_each_kind_of_error_in_plain_words(data: dict[str, object], said: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(data)
    assert first(caught.value) == (next(iter(data)), said)


def test_limits_read_as_a_person_writes_them() -> None:
    assert (number(300.0), number(0.001), number(16777216)) == ("300", "0.001", "16777216")


@pytest.mark.parametrize(("name", "value"), [
    ("CONCURRENCY", "0"), ("CONCURRENCY", "lots"), ("CONCURRENCY", "2.5"),
    ("LOG_TAIL_BYTES", "1"), ("METRICS_PORT", "-1"), ("IDLE_WAIT", "inf"),
    ("KEY_PREFIX", ""), ("LOG_TARGET", "syslog"), ("JOB_CGROUP", "on"), ("LOG_LEVEL", "loud"),
    ("POLICY__BACKOFF_FACTOR", "0.5"), ("POLICY__MAX_RETRIES", "x"),
])
def test_no_setting_speaks_pydantic(name: str, value: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"QUEUECTL_{name}", value)
    with pytest.raises(InvalidInputError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid environment QUEUECTL_{name}: "), message
    assert not any(words in message for words in PYDANTIC_WORDS), message


@pytest.mark.parametrize("text", [
    '{"command":"x","max_retries":-1}', '{"command":"x","max_retries":"3"}',
    '{"command":"x","timeout":0}', '{"command":5}', '{"command":"x","env":{"A":1}}',
    '{"command":"x","env":[]}', '{"command":"x","queue":""}', '{"command":"x","run_at":[]}',
])
def test_no_job_field_speaks_pydantic(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        spec_from_json(text)
    message = str(caught.value)
    assert message.startswith("invalid "), message
    assert not any(words in message for words in PYDANTIC_WORDS), message
