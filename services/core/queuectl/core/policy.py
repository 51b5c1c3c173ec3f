"""Runtime policy keys of ``P:config``: names, validation and effective values."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from queuectl.core.errors import InvalidInputError
from queuectl.core.settings import PolicyDefaults


@dataclass(frozen=True, slots=True)
class PolicyKey:
    name: str
    attr: str
    help: str
    parse: Callable[[str], float]


def _number(minimum: float, *, integer: bool = False, strict_min: bool = False,
            maximum: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = int(raw) if integer else float(raw)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise InvalidInputError(f"{raw!r} is not {kind}") from None
        if not math.isfinite(value):
            raise InvalidInputError(f"{raw!r} is not a finite number")
        if value < minimum or (strict_min and value == minimum):
            op = ">" if strict_min else ">="
            raise InvalidInputError(f"value must be {op} {minimum:g}, got {raw}")
        if maximum is not None and value > maximum:
            raise InvalidInputError(f"value must be <= {maximum:g}, got {raw}")
        return value

    return parse


POLICY_KEYS: dict[str, PolicyKey] = {
    k.name: k
    for k in (
        PolicyKey("max-retries", "max_retries", "retries after the first run",
                  _number(0, integer=True, maximum=1000)),
        PolicyKey("backoff-base", "backoff_base", "seconds before the first retry",
                  _number(0, strict_min=True)),
        PolicyKey("backoff-factor", "backoff_factor", "growth of each further delay",
                  _number(1)),
        PolicyKey("backoff-max", "backoff_max", "cap on one delay in seconds (0 = none)",
                  _number(0)),
        PolicyKey("job-timeout", "job_timeout", "default job timeout in seconds (0 = none)",
                  _number(0)),
        PolicyKey("completed-ttl", "completed_ttl",
                  "seconds completed and cancelled jobs are kept (0 = forever)",
                  _number(0, integer=True)),
        PolicyKey("max-lost", "max_lost",
                  "runs that may lose their worker before the job goes to the DLQ",
                  _number(1, integer=True, maximum=1000)),
    )
}


def policy_key(name: str) -> PolicyKey:
    try:
        return POLICY_KEYS[name]
    except KeyError:
        known = ", ".join(POLICY_KEYS)
        raise InvalidInputError(f"unknown config key {name!r} (known: {known})") from None


def normalise(name: str, raw: str) -> str:
    """Validate a value for ``config set`` and return the form stored in Redis."""
    key = policy_key(name)
    try:
        value = key.parse(raw.strip())
    except InvalidInputError as exc:
        raise InvalidInputError(f"invalid value for {name}: {exc}") from None
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def default_value(name: str, defaults: PolicyDefaults) -> str:
    value = getattr(defaults, policy_key(name).attr)
    return str(int(value)) if float(value).is_integer() else repr(float(value))
