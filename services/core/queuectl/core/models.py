"""The job record: its states, what a client may submit, and how it is stored."""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from queuectl.core import strictjson, wording
from queuectl.core.display import escape
from queuectl.core.errors import DataError, InvalidInputError
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.settings import NAME_PATTERN

MAX_COMMAND_BYTES = 128 * 1024
MAX_RETRIES = 1000  # a job's own max_retries (scripts/lib/job.lua holds the same bound)
MIN_TIMEOUT = 0.001
MAX_TIMEOUT = 30 * 86400
# How far ahead a job may be scheduled (--delay, --run-at, run_at): further is a typo,
# and datetimes past the year 9999 cannot even be represented.
MAX_SCHEDULE_AHEAD = 10 * 365 * 86400
MAX_ENV_VARS = 100
MAX_ENV_BYTES = 32 * 1024
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class CorruptRecordError(DataError):
    """A stored job record does not parse; ``why`` names the first bad field."""

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(f"job {job_id} has a record that cannot be read: {why} "
                         "(queuectl doctor --repair moves it to quarantine)")
        self.job_id = job_id
        self.why = why


class JobState(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    # Derived, never stored: the job's id is in the quarantine (its record stays as found).
    QUARANTINED = "quarantined"

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES


ENDED_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})
# The states a record may store (read_job in Lua accepts exactly these).
STATE_NAMES = frozenset(s.value for s in JobState if s is not JobState.QUARANTINED)


class _RandomIds:
    """32 random hex digits a call, from os.urandom read 8 KiB at a time: one system call
    per 512 ids instead of one each (bulk enqueue makes many). Thread-safe; a forked
    child starts afresh, so it never repeats its parent's ids."""

    def __init__(self) -> None:
        self._start()
        os.register_at_fork(after_in_child=self._start)

    def _start(self) -> None:
        # In a child, a new lock too: the parent's may have been held by another thread.
        self._lock = threading.Lock()
        self._ids: list[str] = []

    def __call__(self) -> str:
        with self._lock:
            if not self._ids:
                block = os.urandom(16 * 512).hex()
                self._ids = [block[i:i + 32] for i in range(0, len(block), 32)]
                self._ids.reverse()
            return self._ids.pop()


_random_id = _RandomIds()


def new_job_id() -> str:
    """A new job id: 32 random hex digits, as ``uuid4().hex`` has."""
    return _random_id()


class JobSpec(BaseModel):
    """What a client submits; everything else in the record is QueueCTL's to set.

    Strict: a number is a JSON number (not ``true`` or ``"3"``), and every value is
    checked against what the record, the scripts and a worker can honour, so that a
    job that is accepted can also be stored, shown and run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str = Field(default_factory=new_job_id, pattern=NAME_PATTERN)
    command: str = Field(min_length=1)
    queue: str = Field(DEFAULT_QUEUE, pattern=NAME_PATTERN)
    max_retries: int | None = Field(None, ge=0, le=MAX_RETRIES)
    # At least a millisecond: the scripts store seconds with six decimals, and a smaller
    # value would be stored as 0, which no record may hold.
    timeout: float | None = Field(None, ge=MIN_TIMEOUT, le=MAX_TIMEOUT, allow_inf_nan=False)
    run_at: datetime | None = None
    env: dict[str, str] | None = None

    @field_validator("env")
    @classmethod
    def _check_env(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if not value:
            return None
        if len(value) > MAX_ENV_VARS:
            raise ValueError(f"more than {MAX_ENV_VARS} variables")
        for name, v in value.items():
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"{escape(name)!r} is not a variable name")
            if name.startswith("QUEUECTL_"):
                raise ValueError(f"{name} is reserved: QUEUECTL_* variables are QueueCTL's")
            if "\x00" in v:
                raise ValueError(f"{name} contains a NUL byte")
            if not v.isascii() and not _is_text(v):
                raise ValueError(f"{name} is not valid UTF-8 text")
        if len(json.dumps(value)) > MAX_ENV_BYTES:
            raise ValueError(f"larger than {MAX_ENV_BYTES} bytes")
        return value

    def env_json(self) -> str:
        """The ``env`` field as stored: compact JSON, "" for none."""
        return json.dumps(self.env, separators=(",", ":")) if self.env else ""

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command is empty")
        if "\x00" in value:
            raise ValueError("command contains a NUL byte")
        if len(value.encode("utf-8")) > MAX_COMMAND_BYTES:
            raise ValueError(f"command is longer than {MAX_COMMAND_BYTES} bytes")
        return value

    @field_validator("run_at", mode="before")
    @classmethod
    def _check_run_at(cls, value: object) -> datetime | None:
        return None if value is None else run_at_value(value)


def _is_text(value: str) -> bool:
    """False for a string holding lone surrogates (bytes that were not UTF-8): Redis
    could not be sent it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def run_at_value(value: object) -> datetime:
    """A run_at as an aware UTC datetime: from ISO 8601 text (UTC unless an offset is
    given), a datetime, or epoch seconds; ValueError outside 1970 .. now + ten years."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("use ISO 8601 such as 2026-12-01T10:00:00Z, "
                             "or a number of seconds since 1970") from None
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        # timestamp() works for every year datetime can hold; astimezone(UTC) does not
        # (9999-12-31T23:59:59-05:00 is in the year 10000), so bounds come first.
        seconds = aware.timestamp()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Epoch seconds, always: pydantic would read a large number as milliseconds.
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        seconds = float(value)
    else:
        raise ValueError("use ISO 8601 text or a number of seconds since 1970")
    if seconds < 0:
        raise ValueError("before 1970-01-01T00:00:00Z")
    if seconds > time.time() + MAX_SCHEDULE_AHEAD:
        raise ValueError("more than ten years ahead")
    return datetime.fromtimestamp(seconds, UTC)


def check_delay(delay: object, run_at: datetime | None = None) -> float | None:
    """A delay in seconds (the script adds it to Redis's clock), checked as a run_at is."""
    if delay is None:
        return None
    if run_at is not None:
        raise InvalidInputError("give a delay or a run_at time, not both")
    if (isinstance(delay, bool) or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_SCHEDULE_AHEAD):  # NaN fails both comparisons
        raise InvalidInputError("invalid delay: use 0 to ten years in seconds")
    return float(delay)


def spec_from_options(command: str, *, job_id: str | None = None, queue: str = DEFAULT_QUEUE,
                      max_retries: int | None = None, timeout: float | None = None,
                      run_at: datetime | None = None,
                      env: dict[str, str] | None = None) -> JobSpec:
    """Validate a job given as separate values (the CLI's flags, ``Client.enqueue``); a
    delay is not part of the job (see check_delay)."""
    data: dict[str, object] = {"command": command, "queue": queue}
    for name, value in (("id", job_id), ("max_retries", max_retries), ("timeout", timeout),
                        ("run_at", run_at), ("env", env)):
        if value is not None:
            data[name] = value
    return spec_from_mapping(data)


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first problem, in the user's terms."""
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "job"
    if err["type"] == "extra_forbidden":
        return f"unknown field {field!r}"
    if err["type"] == "missing":
        return f"missing field {field!r}"
    if field == "id" and err["type"] == "string_pattern_mismatch":
        return "invalid id: use 1-128 characters of A-Z a-z 0-9 . _ -"
    if field == "queue" and err["type"] == "string_pattern_mismatch":
        return "invalid queue name: use 1-128 characters of A-Z a-z 0-9 . _ -"
    return f"invalid {field}: {wording.plain(err)}"


def spec_from_mapping(data: object) -> JobSpec:
    """Validate one decoded JSON value as a job."""
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", int: "a number", float: "a number",
                bool: "a boolean", type(None): "null"}.get(type(data), type(data).__name__)
        raise InvalidInputError(f"a job must be a JSON object, not {kind}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(describe_validation_error(exc)) from None


def spec_from_json(text: str) -> JobSpec:
    """Parse (strictly: see core/strictjson.py) and validate the note's JSON form of a job."""
    return spec_from_mapping(strictjson.loads(text))


def valid_name(name: str) -> bool:
    """True for a usable job, queue or worker id: 1-128 characters of A-Za-z0-9._-."""
    return _NAME.fullmatch(name) is not None


def check_job_id(job_id: str) -> str:
    if not re.fullmatch(NAME_PATTERN, job_id):
        raise InvalidInputError("invalid id: use 1-128 characters of A-Z a-z 0-9 . _ -")
    return job_id


def _opt_float(raw: str | None) -> float | None:
    return float(raw) if raw not in (None, "") else None


def _opt_int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


# The rules of scripts/lib/job.lua (read_job), which every script applies before it
# trusts a record; tests/store/test_record_rules.py keeps the two equal.
_COUNT = re.compile(r"[0-9]{1,15}")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_EXIT = re.compile(r"-?[0-9]+")
_NAME = re.compile(NAME_PATTERN)
COUNT_FIELDS = ("attempts", "lease", "interrupted", "lost", "log_size")
TIME_FIELDS = ("run_at", "created_at", "updated_at", "started_at", "finished_at", "ready_at",
               "spawned_at")


def stored_count(raw: str | None) -> int | None:
    """A counter as QueueCTL stores one (1-15 ASCII digits); None when absent or anything
    else: str.isdigit() also takes digits such as "²" that int() refuses."""
    return int(raw) if raw is not None and _COUNT.fullmatch(raw) else None


def _decimal(raw: str) -> bool:
    return len(raw) <= 32 and _DECIMAL.fullmatch(raw) is not None


def env_problem(raw: str) -> str | None:
    """Why a stored ``env`` field is unusable, or None."""
    if not raw.startswith("{"):
        return "field env is not a JSON object"
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return "field env is not a JSON object"
    if not isinstance(value, dict):
        return "field env is not a JSON object"
    for name, v in value.items():
        if not isinstance(v, str):
            return "field env is not an object of strings"
        if not _ENV_NAME.fullmatch(name) or name.startswith("QUEUECTL_") or "\x00" in v:
            return "field env has a variable QueueCTL refuses"
    return None


def record_problem(raw: dict[str, str], job_id: str) -> str | None:  # noqa: C901, PLR0911, PLR0912
    """Why a stored job record cannot be used, or None; the rules of ``read_job`` in Lua."""
    def get(name: str) -> str:
        return raw.get(name, "")

    if get("id") != job_id:
        return f"field id is not {job_id}"
    if get("command") == "":
        return "field command is empty"
    if not _NAME.fullmatch(get("queue")):
        return "field queue is not a queue name"
    if get("state") not in STATE_NAMES:
        return "field state is not a known state"
    for name in COUNT_FIELDS:
        if get(name) != "" and not _COUNT.fullmatch(get(name)):
            return f"field {name} is not a number"
    retries = get("max_retries")
    if retries != "" and not (_COUNT.fullmatch(retries) and int(retries) <= MAX_RETRIES):
        return f"field max_retries is not a number from 0 to {MAX_RETRIES}"
    timeout = get("timeout")
    if timeout != "" and not (_decimal(timeout) and 0 < float(timeout) <= MAX_TIMEOUT):
        return "field timeout is not a number of seconds"
    for name in TIME_FIELDS:
        if get(name) != "" and not _decimal(get(name)):
            return f"field {name} is not a time"
    code = get("exit_code")
    if code != "" and not (len(code) <= 11 and _EXIT.fullmatch(code)):
        return "field exit_code is not a number"
    if get("worker") != "" and not _NAME.fullmatch(get("worker")):
        return "field worker is not a worker id"
    if get("env") != "":
        return env_problem(get("env"))
    return None


class Job(BaseModel):
    """A job record as stored in ``P:jobs:<id>``; times are epoch seconds."""

    model_config = ConfigDict(frozen=True)

    id: str
    command: str
    queue: str
    state: JobState
    attempts: int = 0
    max_retries: int | None = None
    timeout: float | None = None
    run_at: float | None = None
    created_at: float
    updated_at: float
    started_at: float | None = None
    # When the last run's command was spawned (Redis's clock, as its worker measured it);
    # started_at is when its worker took the job.
    spawned_at: float | None = None
    finished_at: float | None = None
    # Since when the job has been ready to run (on its queue); None before that.
    ready_at: float | None = None
    exit_code: int | None = None
    last_error: str | None = None
    worker: str | None = None
    lease: int = 0
    interrupted: int = 0
    lost: int = 0
    log_size: int = 0
    trace_context: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # Not in the record: the bytes of output kept in P:log:<id> when the record was read.
    log_kept: int = 0

    @classmethod
    def from_hash(cls, raw: dict[str, str], job_id: str | None = None, *,
                  log_kept: int = 0) -> Job:
        """Build from an HGETALL reply (decoded strings); CorruptRecordError if it is unusable."""
        job_id = raw.get("id", "") if job_id is None else job_id
        why = record_problem(raw, job_id)
        if why is not None:
            raise CorruptRecordError(job_id, why)
        return cls(
            id=raw["id"],
            command=raw.get("command", ""),
            queue=raw.get("queue", DEFAULT_QUEUE),
            state=JobState(raw.get("state", "pending")),
            attempts=int(raw.get("attempts") or 0),
            max_retries=_opt_int(raw.get("max_retries")),
            timeout=_opt_float(raw.get("timeout")),
            run_at=_opt_float(raw.get("run_at")),
            created_at=float(raw.get("created_at") or 0),
            updated_at=float(raw.get("updated_at") or 0),
            started_at=_opt_float(raw.get("started_at")),
            spawned_at=_opt_float(raw.get("spawned_at")),
            finished_at=_opt_float(raw.get("finished_at")),
            ready_at=_opt_float(raw.get("ready_at")),
            exit_code=_opt_int(raw.get("exit_code")),
            last_error=raw.get("last_error") or None,
            worker=raw.get("worker") or None,
            lease=int(raw.get("lease") or 0),
            interrupted=int(raw.get("interrupted") or 0),
            lost=int(raw.get("lost") or 0),
            log_size=int(raw.get("log_size") or 0),
            trace_context=raw.get("trace_context") or None,
            env=json.loads(raw["env"]) if raw.get("env") else {},
            log_kept=log_kept,
        )


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds; a time no datetime can hold (a record may store
    any decimal) is shown as its number instead of failing the whole command."""
    try:
        moment = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return f"out of range: {float(ts)!r} s since 1970-01-01"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
