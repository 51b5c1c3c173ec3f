"""QueueCTL's Python client, in one import:

    from queuectl.client import Client, JobSpec, JobState, Settings

    client = Client.connect(Settings())            # the same environment as the CLI
    job = client.enqueue("echo hello", max_retries=2)
    print(client.wait([job.id])[job.id].state)

The names here are the public API: the client, the job as submitted (``JobSpec``) and
as stored (``Job``), its states, the settings, what bulk and wait calls return, and
every error (each a ``QueueCtlError``). The modules under ``queuectl.core`` they come
from are internal and may move. ``queuectl`` is a namespace package shared by the
core, worker, scheduler and cli portions, so this is a module of the core portion, not
an ``__init__``.
"""

from __future__ import annotations

from queuectl.core.client import Client, JobPage, LogTail, Settled
from queuectl.core.enqueueing import BulkEnqueueError
from queuectl.core.errors import (
    CancelledError,
    ConflictError,
    DataError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    QueueCtlError,
    RedisRefusedError,
    RedisUnavailableError,
    ReplicationError,
    UsageError,
    WaitTimeoutError,
)
from queuectl.core.models import CorruptRecordError, Job, JobSpec, JobState
from queuectl.core.scripting import EnqueueResult
from queuectl.core.settings import Settings

__all__ = [
    "BulkEnqueueError",
    "CancelledError",
    "Client",
    "ConflictError",
    "CorruptRecordError",
    "DataError",
    "EnqueueResult",
    "InvalidInputError",
    "Job",
    "JobPage",
    "JobSpec",
    "JobState",
    "LogTail",
    "NotFoundError",
    "PermissionDeniedError",
    "QueueCtlError",
    "RedisRefusedError",
    "RedisUnavailableError",
    "ReplicationError",
    "Settings",
    "Settled",
    "UsageError",
    "WaitTimeoutError",
]
