"""The job-record rules exist twice, in Lua (scripts/lib/job.lua, which every script
applies before it trusts a record) and in Python (models.record_problem, which the
CLI uses to show records): generated records must be judged the same by both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queuectl.core.lua import expand
from queuectl.core.models import record_problem

PROBE = """--- @include "job"
local rec, bad = read_job(KEYS[1], ARGV[1])
if bad then return {'bad', bad} end
if not rec then return {'none'} end
return {'ok'}
"""

GOOD: dict[Any, Any] = {"id": "j1", "command": "echo hi", "queue": "default", "state": "pending",
        "attempts": "0", "max_retries": "", "timeout": "", "run_at": "", "lease": "0",
        "log_size": "0", "created_at": "1764400000.000001", "updated_at": "1764400000.000001",
        "trace_context": "", "enqueue_token": "abc", "env": ""}

FIELDS = ["id", "command", "queue", "state", "attempts", "max_retries", "timeout", "run_at",
          "lease", "interrupted", "lost", "log_size", "worker", "exit_code", "created_at",
          "updated_at", "started_at", "finished_at", "env", "spawned_at"]

# Values near every boundary the rules draw, plus arbitrary text.
tricky = st.sampled_from([
    "", "0", "1", "-1", "007", "1.5", "1.", ".5", "1e3", "0x10", " 5", "5 ", "inf", "nan",
    "9" * 15, "9" * 16, "1000", "1001", "2592000", "2592000.5", "0.0", "abc", "processing",
    "quarantined", "bogus", "a b", "x" * 129, "default", "w-1", "\u00e9", "{}", "[]",
    '{"A":"b"}', '{"QUEUECTL_X":"1"}', '{"a":1}', ' {"a":"b"}', '{"a":"b\\u0000"}', "j1",
])
values = st.one_of(tricky, st.text(max_size=20))
records = st.fixed_dictionaries(
    {}, optional={field: values for field in FIELDS}
).map(lambda changes: {**GOOD, **changes})


@pytest.fixture(scope="module")
def judge(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@settings(max_examples=600, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records)
def test_lua_and_python_agree_on_every_record(judge: redis.Redis, record: dict[Any, Any]) -> None:
    key = "qc-rules:jobs:j1"
    judge.delete(key)
    judge.hset(key, mapping=record)
    verdict = judge.eval(expand(PROBE), 1, key, "j1")
    python = record_problem(record, "j1")
    assert (verdict[0] == "ok") == (python is None), (record, verdict, python)
    if python is not None and verdict[0] == "bad" and not python.startswith("field env"):
        # The first failing field is named the same way (env's order may differ: Lua
        # walks a JSON object in hash order).
        assert verdict[1] == python


def test_a_good_record_passes_both(judge: redis.Redis) -> None:
    judge.delete("qc-rules:jobs:j1")
    judge.hset("qc-rules:jobs:j1", mapping={**GOOD, "env": json.dumps({"A": "b"})})
    assert judge.eval(expand(PROBE), 1, "qc-rules:jobs:j1", "j1") == ["ok"]
    assert record_problem({**GOOD, "env": '{"A":"b"}'}, "j1") is None


def test_a_key_of_another_type_is_unreadable(judge: redis.Redis) -> None:
    judge.delete("qc-rules:jobs:j1")
    judge.set("qc-rules:jobs:j1", "x")
    assert judge.eval(expand(PROBE), 1, "qc-rules:jobs:j1", "j1") == [
        "bad", "record qc-rules:jobs:j1 is a string, not a hash"]
