"""Settings from the environment (prefix ``QUEUECTL_``), built once in each ``main()``.

Runtime policy (retries, backoff, timeouts, retention) lives in ``P:config``
and is changed with ``queuectl config set``; the values here are only its
defaults, used while a key is unset there.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from queuectl.core import wording
from queuectl.core.errors import InvalidInputError
from queuectl.core.keys import hash_tag
from queuectl.core.policy import Policy

# The environment gives the runtime policy's defaults (QUEUECTL_POLICY__*).
PolicyDefaults = Policy

NAME_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_NAME_RE = re.compile(NAME_PATTERN)

# What a job's command sees of the worker's environment unless the operator says
# otherwise: what cron, sudo's env_reset and systemd hand a program (who it runs as,
# where it looks for commands, its locale, time zone and scratch space), and no
# credentials. Kubernetes service links, cloud keys and tokens must be allowed by name.
DEFAULT_JOB_ENV_ALLOW = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME",
                         "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR")
# A variable name (POSIX letters, digits, _; Kubernetes also allows . and -) with the
# shell-style globs * ? and [...] / [!...].
_ENV_PATTERN_RE = re.compile(r"^(?:[A-Za-z0-9_.-]|\*|\?|\[!?[A-Za-z0-9_.-]+\])+$")
RESERVED_ENV_PREFIX = "QUEUECTL_"
LOG_LEVELS = ("debug", "info", "warning", "error")


# Bounds of the durations (seconds). Intervals: 10 ms (a smaller one is a busy loop) to
# 5 min (a worker that beats less often looks dead for that long). A worker TTL past an
# hour leaves a dead worker's jobs stranded that long; a kill grace past 10 min and a
# shutdown grace past a day are typos (Kubernetes' own grace is 30 s).
MIN_INTERVAL = 0.01
MAX_INTERVAL = 300.0
MAX_WORKER_TTL = 3600.0
MAX_KILL_GRACE = 600.0
MAX_SHUTDOWN_GRACE = 86400.0


def _seconds(default: float, low: float, high: float, description: str | None = None) -> Any:
    """A duration field: finite, ``low <= value <= high``."""
    return Field(default, ge=low, le=high, allow_inf_nan=False, description=description)


class LogTarget(StrEnum):
    FILE = "file"
    STDOUT = "stdout"
    BOTH = "both"


class JobCgroup(StrEnum):
    AUTO = "auto"  # one cgroup v2 per run where the hierarchy is writable, else fall back
    OFF = "off"


class LogFormat(StrEnum):
    TEXT = "text"  # one escaped line per event (core/logs.py)
    JSON = "json"  # one JSON object per line


class TraceMode(StrEnum):
    PARENT = "parent"  # every attempt is a child of the send span: one trace per job
    LINK = "link"  # every attempt starts a trace of its own, linked to the send span


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "queuectl"


class Settings(BaseSettings):
    """Everything a QueueCTL process reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="QUEUECTL_", env_nested_delimiter="__", extra="ignore"
    )

    redis_url: str | None = Field(
        None, description="redis://, rediss:// or redis+sentinel:// URL; unset = the embedded "
                          "local server"
    )
    redis_cluster: bool = Field(
        False, description="QUEUECTL_REDIS_URL names nodes of a Redis Cluster; needs a "
                           "hash-tagged QUEUECTL_KEY_PREFIX such as {queuectl}")
    redis_min_replicas_ack: int = Field(
        0, ge=0, le=16, description="replicas that must confirm an enqueue or a finish "
                                    "(WAIT) before it counts as done; 0 = off")
    # WAIT 0 would block forever; a minute of blocking is a replica that is gone.
    redis_replica_ack_timeout: float = _seconds(
        1.0, MIN_INTERVAL, 60.0, "seconds an enqueue or a finish waits for those replicas")
    key_prefix: str = Field("queuectl", min_length=1, max_length=64)
    queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    concurrency: int = Field(4, ge=1, le=512)
    worker_processes: int = Field(
        1, ge=1, le=64, description="worker processes, each with its own worker id and "
                                    "QUEUECTL_CONCURRENCY threads")
    data_dir: Path = Field(default_factory=default_data_dir)
    log_dir: Path | None = Field(None, description="default: <data_dir>/logs")
    log_target: LogTarget = LogTarget.FILE
    log_tail_bytes: int = Field(65536, ge=1024, le=16 * 1024 * 1024)
    metrics_port: int | None = Field(
        None, ge=0, le=65535,
        description="/metrics, /healthz, /readyz; default 9750 (worker), 9751 (scheduler); 0 = off")
    # Every interface, as a pod's probes and Prometheus reach it by the pod's address.
    metrics_addr: str = Field("0.0.0.0", min_length=1, max_length=255)  # noqa: S104
    # Every duration is finite and bounded: each ends up in an Event.wait, a socket
    # timeout or a PEXPIRE, where inf or 1e300 is an OverflowError, and a value near 0
    # turns a wait into a busy loop.
    heartbeat_interval: float = _seconds(2.0, MIN_INTERVAL, MAX_INTERVAL)
    worker_ttl: float = _seconds(10.0, MIN_INTERVAL, MAX_WORKER_TTL,
                                 "seconds a worker's status outlives its last heartbeat")
    idle_wait: float = _seconds(5.0, MIN_INTERVAL, MAX_INTERVAL,
                                "longest block on an empty queue")
    scheduler_interval: float = _seconds(1.0, MIN_INTERVAL, MAX_INTERVAL,
                                         "longest scheduler sleep")
    scheduler_batch: int = Field(100, ge=1, le=10000)
    worker_id: str | None = Field(None, description="default: <hostname>-<pid>-<random>")
    shutdown_grace: float = _seconds(25.0, 0, MAX_SHUTDOWN_GRACE,
                                     "seconds running jobs get to finish after SIGTERM")
    kill_grace: float = _seconds(2.0, 0, MAX_KILL_GRACE,
                                 "seconds between SIGTERM and SIGKILL of a job's process group")
    job_cgroup: JobCgroup = Field(
        JobCgroup.AUTO, description="auto: each run in its own cgroup v2 where writable; off"
    )
    log_sweep_interval: float = _seconds(
        60.0, MIN_INTERVAL, MAX_INTERVAL,
        "seconds between passes that remove the log files of jobs no longer kept in Redis")
    log_level: str = "INFO"
    job_env_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_JOB_ENV_ALLOW),
        description="worker variables a job sees: names or globs, comma-separated; * = all",
    )
    job_env_deny: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="names or globs removed after job_env_allow",
    )
    policy: PolicyDefaults = Field(default_factory=PolicyDefaults)
    log_format: LogFormat = Field(
        LogFormat.TEXT, description="service log lines: text, or json (one object per line)")
    trace_mode: TraceMode = Field(
        TraceMode.PARENT, description="parent: every attempt joins the job's trace; link: "
                                      "every attempt starts a trace linked to it")

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @field_validator("queues")
    @classmethod
    def _check_queues(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one queue is required")
        for name in value:
            if not _NAME_RE.match(name):
                raise ValueError(f"invalid queue name {name!r}")
        if len(set(value)) != len(value):
            raise ValueError("queue names repeat")
        return value

    @field_validator("job_env_allow", "job_env_deny", mode="before")
    @classmethod
    def _split_env_patterns(cls, value: object) -> object:
        if isinstance(value, str):
            # An empty value is an empty list (ALLOW= passes nothing); an empty item
            # in a list is a typo (two commas) and refused below.
            return [p.strip() for p in value.split(",")] if value.strip() else []
        return value

    @field_validator("job_env_allow", "job_env_deny")
    @classmethod
    def _check_env_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not pattern:
                raise ValueError("empty name in the list (two commas in a row?)")
            if not _ENV_PATTERN_RE.match(pattern):
                raise ValueError(f"invalid name or pattern {pattern!r}: use letters, digits, "
                                 "_ . - and the globs * ? [...]")
        return value

    @field_validator("job_env_allow")
    @classmethod
    def _check_env_allow(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern.startswith(RESERVED_ENV_PREFIX):
                # The Redis URL and the rest of QueueCTL's settings would let any job
                # rewrite the queue; jobs get QUEUECTL_JOB_* facts from the worker instead.
                raise ValueError(f"{pattern!r}: QUEUECTL_* variables are never passed to jobs")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value

    @field_validator("worker_id", mode="before")
    @classmethod
    def _check_worker_id(cls, value: object) -> object:
        if value == "":
            return None  # QUEUECTL_WORKER_ID= in a manifest means "not set"
        # The id is printed in logs and tables and is part of Redis keys: the rules of a
        # job id, so it can carry no escape sequence, newline or key syntax.
        if isinstance(value, str) and not _NAME_RE.fullmatch(value):
            raise ValueError("not a usable id: use 1-128 characters of A-Z a-z 0-9 . _ -")
        return value

    @model_validator(mode="after")
    def _check_ttl(self) -> Settings:
        if self.worker_ttl <= self.heartbeat_interval:
            # Status hashes would expire between beats and live workers be reaped.
            raise ValueError(
                f"QUEUECTL_WORKER_TTL ({self.worker_ttl:g}) must be greater than "
                f"QUEUECTL_HEARTBEAT_INTERVAL ({self.heartbeat_interval:g})")
        return self

    @model_validator(mode="after")
    def _check_cluster(self) -> Settings:
        if not self.redis_cluster:
            return self
        scheme = (self.redis_url or "").partition("://")[0].lower()
        if scheme not in ("redis", "rediss"):
            # The embedded server, a unix socket or Sentinel is never a cluster.
            raise ValueError("QUEUECTL_REDIS_CLUSTER=true needs QUEUECTL_REDIS_URL to be a "
                             "redis:// or rediss:// URL naming one or more cluster nodes")
        if hash_tag(self.key_prefix) is None:
            # Every script touches several keys: without a tag they spread over slots
            # and Redis Cluster refuses the script (CROSSSLOT).
            raise ValueError(f"QUEUECTL_KEY_PREFIX {self.key_prefix!r} has no hash tag: on a "
                             "Redis Cluster every key of a prefix must share one slot; use "
                             "a prefix such as {queuectl}")
        return self

    @field_validator("key_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("key prefix must not contain white space")
        return value

    @property
    def resolved_log_dir(self) -> Path:
        return self.log_dir if self.log_dir is not None else self.data_dir / "logs"


def load_settings() -> Settings:
    """Build settings from the environment; any problem is InvalidInputError (one line)."""
    try:
        return Settings()
    except ValidationError as exc:
        where, msg = wording.first(exc)
        if not where:  # a check across fields names its variables itself
            raise InvalidInputError(f"invalid environment: {msg}") from None
        # Nested fields are read from QUEUECTL_POLICY__MAX_RETRIES: name that variable.
        name = "QUEUECTL_" + where.replace(".", "__").upper()
        raise InvalidInputError(f"invalid environment {name}: {msg}") from None
    except SettingsError as exc:
        # pydantic-settings could not decode a value at all (QUEUECTL_POLICY=not-json).
        field = re.search(r'field "(\w+)"', str(exc))
        name = f"QUEUECTL_{field.group(1).upper()}" if field else "a QUEUECTL_* variable"
        raise InvalidInputError(f"invalid environment {name}: not valid JSON (set "
                                f"{name}__<KEY> variables one by one instead)") from None
