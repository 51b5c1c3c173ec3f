"""One exception tree for every service; each class carries the CLI exit code it maps to.

Exit codes (documented in the README):

====  ==================================================================
0     success
1     ``wait``: at least one job ended in a state other than ``completed``
2     usage error (unknown option, missing argument)
3     invalid input (bad JSON, unknown field, bad id, bad config value)
4     not found (unknown job or worker)
5     conflict (id already exists, job not in a state that allows it)
6     Redis unreachable, refused the credentials, or could not be started
7     ``wait --timeout`` expired before every job ended
8     Redis holds data QueueCTL cannot use (a key of the wrong type, a corrupted
      record); ``queuectl doctor`` shows what and where
130   interrupted (Ctrl-C), or cancelled: a confirmation prompt was answered no
====  ==================================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_REDIS = 6
EXIT_TIMEOUT = 7
EXIT_DATA = 8
EXIT_INTERRUPTED = 130


class QueueCtlError(Exception):
    """Base of every error QueueCTL raises on purpose; ``str()`` is the one-line message."""

    exit_code = EXIT_INVALID


class UsageError(QueueCtlError):
    """The command line itself is wrong."""

    exit_code = EXIT_USAGE


class InvalidInputError(QueueCtlError):
    """A job, id, duration or config value failed validation."""

    exit_code = EXIT_INVALID


class NotFoundError(QueueCtlError):
    """The job or worker named does not exist."""

    exit_code = EXIT_NOT_FOUND


class ConflictError(QueueCtlError):
    """The request is valid but the current state refuses it (duplicate id, wrong state)."""

    exit_code = EXIT_CONFLICT


class RedisUnavailableError(QueueCtlError):
    """Redis cannot be reached, refused our credentials, or the embedded server failed to start."""

    exit_code = EXIT_REDIS


class ReplicationError(RedisUnavailableError):
    """A write was done on the master but fewer replicas than required confirmed it in time
    (QUEUECTL_REDIS_MIN_REPLICAS_ACK): a failover could still undo it."""


class RedisRefusedError(RedisUnavailableError):
    """Redis refused the credentials or a command (ACL): retrying cannot fix it."""


class PermissionDeniedError(RedisRefusedError):
    """The Redis ACL user may not run a command QueueCTL needs (NOPERM); nothing was written."""


class DataError(QueueCtlError):
    """Redis holds something QueueCTL cannot use: a key of the wrong type, a corrupted record.

    Raised only when nothing was written; ``queuectl doctor`` lists such keys.
    """

    exit_code = EXIT_DATA


class WaitTimeoutError(QueueCtlError):
    """``wait`` gave up before the jobs ended."""

    exit_code = EXIT_TIMEOUT


class CancelledError(QueueCtlError):
    """The user answered no at a confirmation prompt: nothing was done.

    Exit 130, as Ctrl-C at the same prompt: both mean "I changed my mind", and a
    script must not take either for success (0) or for a failed wait (1).
    """

    exit_code = EXIT_INTERRUPTED


class CannotWorkError(QueueCtlError):
    """A service cannot do its work on this host (an unusable log directory, every run
    failing to start, a bug that repeats): it says why and exits 1."""

    exit_code = EXIT_JOB_FAILED


class LeaseLostError(QueueCtlError):
    """A worker's lease on a job was taken over; it must not write that job again.

    Never shown to users: the worker catches it, stops the job's process group
    and moves on, because another attempt (or a cancel) now owns the job.
    """

    exit_code = EXIT_CONFLICT
