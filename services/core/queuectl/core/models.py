"""The job record: its states, what a client may submit, and how it is stored."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from queuectl.core.errors import InvalidInputError
from queuectl.core.keys import DEFAULT_QUEUE
from queuectl.core.settings import NAME_PATTERN

MAX_COMMAND_BYTES = 128 * 1024


class JobState(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES


ENDED_STATES = frozenset({JobState.COMPLETED, JobState.DEAD, JobState.CANCELLED})


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobSpec(BaseModel):
    """What a client submits; everything else in the record is QueueCTL's to set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=new_job_id, pattern=NAME_PATTERN)
    command: str = Field(min_length=1)
    queue: str = Field(DEFAULT_QUEUE, pattern=NAME_PATTERN)
    max_retries: int | None = Field(None, ge=0, le=1000)
    timeout: float | None = Field(None, gt=0, le=30 * 86400)
    run_at: datetime | None = None

    @field_validator("command")
    @classmethod
    def _check_command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("command is empty")
        if "\x00" in value:
            raise ValueError("command contains a NUL byte")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
            raise ValueError(f"command is longer than {MAX_COMMAND_BYTES} bytes")
        return value

    @field_validator("run_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


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
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"invalid {field}: {msg}"


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
    """Parse and validate the note's JSON form of a job."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    return spec_from_mapping(data)


def check_job_id(job_id: str) -> str:
    if not re.fullmatch(NAME_PATTERN, job_id):
        raise InvalidInputError("invalid id: use 1-128 characters of A-Z a-z 0-9 . _ -")
    return job_id


def _opt_float(raw: str | None) -> float | None:
    return float(raw) if raw not in (None, "") else None


def _opt_int(raw: str | None) -> int | None:
    return int(raw) if raw not in (None, "") else None


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
    finished_at: float | None = None
    exit_code: int | None = None
    last_error: str | None = None
    worker: str | None = None
    lease: int = 0
    interrupted: int = 0
    lost: int = 0
    log_size: int = 0
    trace_context: str | None = None

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> Job:
        """Build from an HGETALL reply (decoded strings)."""
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
            finished_at=_opt_float(raw.get("finished_at")),
            exit_code=_opt_int(raw.get("exit_code")),
            last_error=raw.get("last_error") or None,
            worker=raw.get("worker") or None,
            lease=int(raw.get("lease") or 0),
            interrupted=int(raw.get("interrupted") or 0),
            lost=int(raw.get("lost") or 0),
            log_size=int(raw.get("log_size") or 0),
            trace_context=raw.get("trace_context") or None,
        )

    def public_dict(self) -> dict[str, Any]:
        """The contract's fields, times as ISO 8601 UTC, for ``--json`` output."""
        out: dict[str, Any] = {}
        for name in (
            "id", "command", "queue", "state", "attempts", "max_retries", "timeout",
            "run_at", "created_at", "updated_at", "started_at", "finished_at",
            "exit_code", "last_error", "worker", "interrupted", "lost",
        ):
            value = getattr(self, name)
            if name.endswith("_at") and value is not None:
                value = iso(value)
            out[name] = value.value if isinstance(value, JobState) else value
        return out


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
