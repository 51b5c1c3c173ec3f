"""The environment a job's command runs with: a filtered copy of the worker's, plus its facts.

A job is any shell command anyone who can enqueue wrote, so it must not see
what the worker runs with: ``QUEUECTL_REDIS_URL`` (with the password) would
let it rewrite the queue, and a pod's other variables may hold cloud keys.
The filter is computed once at worker start from the worker's environment
and ``QUEUECTL_JOB_ENV_ALLOW`` / ``QUEUECTL_JOB_ENV_DENY``; each job then adds
only ``QUEUECTL_JOB_ID``, ``QUEUECTL_JOB_QUEUE`` and ``QUEUECTL_JOB_ATTEMPT``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

from queuectl.core.settings import DEFAULT_JOB_ENV_ALLOW, RESERVED_ENV_PREFIX, Settings


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
    return filter_env(source, settings.job_env_allow, settings.job_env_deny)


def default_base_env() -> dict[str, str]:
    """The default allow list applied to this process's environment (no settings at hand)."""
    return filter_env(os.environ, DEFAULT_JOB_ENV_ALLOW)


def job_env(base: Mapping[str, str], job_id: str, queue: str, attempt: int,
            own: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base``, then the job's own ``env`` field, then its facts: added last, so nothing
    can override them (the job's own variables were validated at enqueue: no QUEUECTL_*)."""
    return {**base, **(own or {}), "QUEUECTL_JOB_ID": job_id, "QUEUECTL_JOB_QUEUE": queue,
            "QUEUECTL_JOB_ATTEMPT": str(attempt)}
