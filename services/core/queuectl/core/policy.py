"""Runtime policy: the keys of ``P:config``, their bounds, and the values in effect.

The environment gives the defaults (``QUEUECTL_POLICY__*``); ``queuectl config
set`` stores overrides in ``P:config``. Scripts never parse ``P:config``: the
services read it here, check every value against the same bounds ``config set``
enforces, fall back to the default (with a warning) for a value that does not
parse, and pass the values to the scripts as arguments.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from queuectl.core.errors import InvalidInputError

log = logging.getLogger("queuectl.policy")

DAY = 86400
# The longest single retry delay ever used, whatever backoff-base and -factor say: a
# delay past it is a configuration mistake, and unbounded powers overflow to inf.
MAX_RETRY_DELAY = 30 * DAY
MAX_JOB_TIMEOUT = 30 * DAY
MAX_COMPLETED_TTL = 10 * 365 * DAY
MIN_SECONDS = 0.001

_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


class Policy(BaseModel):
    """The runtime policy in effect; the bounds here are the ones ``config set`` enforces."""

    model_config = ConfigDict(frozen=True)

    max_retries: int = Field(3, ge=0, le=1000)
    backoff_base: float = Field(2.0, gt=0, le=MAX_RETRY_DELAY)
    backoff_factor: float = Field(2.0, ge=1, le=100)
    backoff_max: float = Field(0.0, ge=0, le=MAX_RETRY_DELAY,
                               description="cap on one retry delay; 0 = no cap")
    job_timeout: float = Field(3600.0, ge=0, le=MAX_JOB_TIMEOUT,
                               description="seconds; 0 = no timeout")
    completed_ttl: int = Field(86400, ge=0, le=MAX_COMPLETED_TTL,
                               description="seconds completed jobs are kept")
    dead_ttl: int = Field(30 * DAY, ge=0, le=MAX_COMPLETED_TTL,
                          description="seconds dead jobs are kept in the DLQ")
    dead_max: int = Field(10000, ge=0, le=10**9, description="dead jobs kept at most")
    max_lost: int = Field(3, ge=1, le=1000, description="runs that may lose their worker")
    backoff_jitter: float = Field(0.0, ge=0, le=1,
                                  description="proportional spread of each retry delay")


@dataclass(frozen=True, slots=True)
class PolicyKey:
    name: str
    attr: str
    help: str
    duration: bool = False  # seconds: takes 90s, 5m, 1h30m, 7d as well as a number


POLICY_KEYS: dict[str, PolicyKey] = {
    k.name: k
    for k in (
        PolicyKey("max-retries", "max_retries", "retries after the first run"),
        PolicyKey("backoff-base", "backoff_base", "seconds before the first retry",
                  duration=True),
        PolicyKey("backoff-factor", "backoff_factor", "growth of each further delay"),
        PolicyKey("backoff-max", "backoff_max", "cap on one delay in seconds (0 = none)",
                  duration=True),
        PolicyKey("backoff-jitter", "backoff_jitter",
                  "spread of each delay, a fraction: 0.2 = +/-20% (0 = none)"),
        PolicyKey("job-timeout", "job_timeout", "default job timeout in seconds (0 = none)",
                  duration=True),
        PolicyKey("completed-ttl", "completed_ttl",
                  "seconds completed and cancelled jobs are kept (0 = forever)", duration=True),
        PolicyKey("dead-ttl", "dead_ttl",
                  "seconds dead jobs are kept in the DLQ (0 = no age limit)", duration=True),
        PolicyKey("dead-max", "dead_max",
                  "dead jobs kept at most; the oldest go first (0 = no limit)"),
        PolicyKey("max-lost", "max_lost",
                  "runs that may lose their worker before the job goes to the DLQ"),
    )
}


def policy_key(name: str) -> PolicyKey:
    try:
        return POLICY_KEYS[name]
    except KeyError:
        known = ", ".join(POLICY_KEYS)
        raise InvalidInputError(f"unknown config key {name!r} (known: {known})") from None


def _bounds_message(exc: ValidationError, raw: str) -> str:
    err = exc.errors()[0]
    ops = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<=",
           "less_than": "<"}
    op = ops.get(err["type"])
    if op is None:
        return str(err["msg"]).lower()
    limit = next(iter(err.get("ctx", {}).values()))
    return f"value must be {op} {format_value(limit)}, got {raw}"


def parse_value(name: str, raw: str) -> float | int:
    """The value of ``raw`` for key ``name``; InvalidInputError (one line) when unusable."""
    key = policy_key(name)
    text = raw.strip()
    integer = Policy.model_fields[key.attr].annotation is int
    if text.lower().lstrip("+-") in ("inf", "infinity", "nan"):
        raise InvalidInputError(f"{raw!r} is not a finite number")
    if key.duration and not _NUMBER.fullmatch(text):
        from queuectl.core.durations import parse_duration

        try:
            text = format_value(parse_duration(text))
        except InvalidInputError:
            raise InvalidInputError(f"{raw!r} is not a number of seconds or a duration "
                                    "(e.g. 500ms, 90s, 5m, 1h30m, 7d)") from None
    if not _NUMBER.fullmatch(text) or (integer and not float(text).is_integer()):
        kind = "a whole number of seconds" if integer and key.duration else (
            "a whole number" if integer else "a number")
        raise InvalidInputError(f"{raw!r} is not {kind}")
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInputError(f"{raw!r} is not a finite number")
    if 0 < value < MIN_SECONDS:
        # Stored with millisecond precision; 1e-300 would be stored as 0 (no timeout).
        raise InvalidInputError(f"value must be 0 or at least {MIN_SECONDS:g}, got {text}")
    try:
        Policy.model_validate({key.attr: int(value) if integer else value})
    except ValidationError as exc:
        raise InvalidInputError(_bounds_message(exc, text)) from None
    return int(value) if integer else value


def format_value(value: float) -> str:
    """The stored form: ``3``, ``0.5`` (no exponent, no trailing zeros)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def normalise(name: str, raw: str) -> str:
    """Validate a value for ``config set`` and return the form stored in Redis."""
    policy_key(name)
    try:
        return format_value(parse_value(name, raw))
    except InvalidInputError as exc:
        raise InvalidInputError(f"invalid value for {name}: {exc}") from None


def default_value(name: str, defaults: Policy) -> str:
    return format_value(getattr(defaults, policy_key(name).attr))


@dataclass(frozen=True, slots=True)
class PolicyView:
    """The policy in effect, what ``P:config`` holds, and which stored values are unusable."""

    policy: Policy
    stored: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    from_env: frozenset[str] = frozenset()  # Policy attributes set by QUEUECTL_POLICY__*

    def source(self, name: str) -> str:
        """Where the value of ``name`` in effect comes from: ``redis`` (config set),
        ``invalid`` (a stored value that does not parse, so the env or default value
        applies), ``env`` (QUEUECTL_POLICY__*) or ``default``."""
        if name in self.invalid:
            return "invalid"
        if name in self.stored:
            return "redis"
        return "env" if POLICY_KEYS[name].attr in self.from_env else "default"


def effective(stored: Mapping[str, str], defaults: Policy) -> PolicyView:
    """Apply the stored overrides that parse; every other value keeps its default."""
    update: dict[str, Any] = {}
    invalid: dict[str, str] = {}
    for name, key in POLICY_KEYS.items():
        if name not in stored:
            continue
        try:
            update[key.attr] = parse_value(name, stored[name])
        except InvalidInputError as exc:
            invalid[name] = f"{exc}; using the default {default_value(name, defaults)}"
    return PolicyView(defaults.model_copy(update=update), dict(stored), invalid,
                      frozenset(defaults.model_fields_set))


class PolicyCache:
    """The policy in effect for one process, read from ``P:config`` at most every ``max_age`` s.

    Services use a max age of a second, so ``config set`` reaches every worker and
    scheduler within that; the CLI reads afresh for every command (max age 0).
    A value that stops parsing is warned about once, not on every read.
    """

    def __init__(self, read: Any, defaults: Policy, max_age: float = 0.0) -> None:
        self._read = read  # () -> dict[str, str] of P:config, or a str saying why it is unusable
        self.defaults = defaults
        self.max_age = max_age
        self._view = PolicyView(defaults)
        self._read_at = -math.inf
        self._warned: dict[str, str] = {}
        self._lock = threading.Lock()

    def view(self) -> PolicyView:
        if time.monotonic() - self._read_at >= self.max_age:
            self.refresh()
        return self._view

    def current(self) -> Policy:
        return self.view().policy

    def refresh(self) -> PolicyView:
        raw = self._read()
        if isinstance(raw, str):
            view = PolicyView(self.defaults, {}, {"*": f"{raw}; using every default"},
                              frozenset(self.defaults.model_fields_set))
        else:
            view = effective(raw, self.defaults)
        with self._lock:
            self._view = view
            self._read_at = time.monotonic()
            for name, why in view.invalid.items():
                if self._warned.get(name) != why:
                    log.warning("config %s: %s", name, why)
            self._warned = dict(view.invalid)
        return view
