"""The environment a job's command runs with: a filtered copy of the worker's, plus its facts.

A job is any shell command anyone who can enqueue wrote, so it must not see
what the worker runs with: ``QUEUECTL_REDIS_URL`` (with the password) would
let it rewrite the queue, and a pod's other variables may hold cloud keys.
The filter is computed once at worker start from the worker's environment
and ``QUEUECTL_JOB_ENV_ALLOW`` / ``QUEUECTL_JOB_ENV_DENY``; each job then adds
its trace context (``TRACEPARENT``, ``TRACESTATE``) and ``QUEUECTL_JOB_ID``,
``QUEUECTL_JOB_QUEUE`` and ``QUEUECTL_JOB_ATTEMPT``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from queuectl.core.settings import DEFAULT_JOB_ENV_ALLOW, RESERVED_ENV_PREFIX, Settings

# OpenTelemetry's environment carriers: a job gets its own run's context, never the
# context the worker itself was started in.
TRACE_VARIABLES = ("TRACEPARENT", "TRACESTATE")


def _matches(name: str, patterns: Iterable[str]) -> bool:
    # Case-sensitive, as variable names are on Linux: lc_* must not pass LC_ALL.
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def filter_env(environ: Mapping[str, str], allow: Iterable[str],
               deny: Iterable[str] = ()) -> dict[str, str]:
    """The variables of ``environ`` that ``allow`` names and ``deny`` does not; never QUEUECTL_*."""
    allow, deny = list(allow), list(deny)
    return {name: value for name, value in environ.items()
            if not name.startswith(RESERVED_ENV_PREFIX)
            and _matches(name, allow) and not _matches(name, deny)}


def base_env(settings: Settings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What every job of this worker inherits, from the settings' allow and deny lists."""
    source = os.environ if environ is None else environ
    return _untraced(filter_env(source, settings.job_env_allow, settings.job_env_deny))


def default_base_env() -> dict[str, str]:
    """The default allow list applied to this process's environment (no settings at hand)."""
    return _untraced(filter_env(os.environ, DEFAULT_JOB_ENV_ALLOW))


def _untraced(env: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in env.items() if name not in TRACE_VARIABLES}


def job_env(base: Mapping[str, str], job_id: str, queue: str, attempt: int,
            own: Mapping[str, str] | None = None,
            trace: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base``, then the job's own ``env`` field, then its trace context, then its facts:
    added last, so nothing can override them (the job's own variables were validated at
    enqueue: no QUEUECTL_*). A run with a trace context replaces both TRACE_VARIABLES, so
    that a TRACESTATE of the job's own never pairs with another traceparent."""
    env = {**base, **(own or {})}
    if trace:
        for name in TRACE_VARIABLES:
            env.pop(name, None)
        env.update(trace)
    return {**env, "QUEUECTL_JOB_ID": job_id, "QUEUECTL_JOB_QUEUE": queue,
            "QUEUECTL_JOB_ATTEMPT": str(attempt)}
