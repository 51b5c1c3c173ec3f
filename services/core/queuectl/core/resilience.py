"""How every service meets Redis failing: classify the error, back off on outages, stop on
the rest. One helper replaces the worker's and scheduler's hand-written retry loops.

The behaviour, the same for every service (README "Redis outages and bad credentials"):

* Redis unreachable, restarting, loading, read-only during a failover: an *outage*.
  Retry with capped exponential back-off (0.1 s to 5 s), one log line when it starts
  and one when Redis is back; never give up, never busy-spin.
* Credentials refused (WRONGPASS, NOAUTH) or a command refused by the ACL (NOPERM):
  a configuration error that retrying cannot fix. The service says so in one line
  and exits 6, at start-up or later (a rotated password: the restarted pod reads
  the new one).
* Anything else is not retried here: the caller decides (a data error affects one
  job or key; an unexpected error is a bug, logged with its traceback).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum
from typing import Protocol, TypeVar

import redis
from redis.exceptions import AuthorizationError, MovedError, NoPermissionError, NoScriptError
from redis.sentinel import MasterNotFoundError

from queuectl.core.errors import (
    PermissionDeniedError,
    RedisRefusedError,
    RedisUnavailableError,
)
from queuectl.core.redact import mask_url, redact

T = TypeVar("T")


class BackoffMonitor(Protocol):
    """Told of every failed call, every recovery and every wait (health and metrics)."""

    def failed(self, what: str, exc: BaseException, outage: bool) -> None: ...
    def recovered(self, what: str) -> None: ...
    def waited(self) -> None: ...

BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0


class Failure(Enum):
    OUTAGE = "outage"        # passes once Redis is back
    REFUSED = "refused"      # credentials or ACL: will not pass by itself
    OTHER = "other"          # not Redis being away: the caller's to handle


REFUSED_TYPES = (RedisRefusedError, redis.AuthenticationError, AuthorizationError,
                 NoPermissionError)
OUTAGE_TYPES = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError,
                RedisUnavailableError)
# Error replies redis-py leaves as plain ResponseErrors, by their first word.
# DENIED: a server in protected mode (no password, client not on its loopback) refuses
# every command; like wrong credentials, that does not pass by waiting.
REFUSED_WORDS = ("NOAUTH", "WRONGPASS", "NOPERM", "DENIED")
OUTAGE_WORDS = ("LOADING", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


def classify(exc: BaseException) -> Failure:
    """What kind of failure ``exc`` is, for retry purposes."""
    if isinstance(exc, REFUSED_TYPES):
        return Failure.REFUSED
    if isinstance(exc, NoScriptError):
        # The server lost its scripts between redis-py's reload and its second try (a
        # restart or failover at that moment): the next call loads them again.
        return Failure.OUTAGE
    if isinstance(exc, redis.ResponseError):
        word = str(exc).split(" ", 1)[0]
        if word in REFUSED_WORDS:
            return Failure.REFUSED
        return Failure.OUTAGE if word in OUTAGE_WORDS else Failure.OTHER
    return Failure.OUTAGE if isinstance(exc, OUTAGE_TYPES) else Failure.OTHER


def error_text(exc: BaseException, url: str) -> str:
    """redis-py's text for ``exc``, short and without secrets."""
    if isinstance(exc, MasterNotFoundError):
        # redis-py appends the repr of every sentinel client it asked: one line is enough.
        return (str(exc).partition(" : ")[0] + " (no sentinel answered, or none monitors "
                "that service name)")
    return redact(str(exc), url) or type(exc).__name__


def redis_error_message(exc: BaseException, url: str) -> str:
    """One line for a Redis failure; neither the URL nor redis-py's text shows a secret."""
    where, text = mask_url(url), error_text(exc, url)
    if isinstance(exc, MovedError):
        return (f"Redis at {where} is a Redis Cluster node (it answered MOVED {text}): set "
                "QUEUECTL_REDIS_CLUSTER=true and a hash-tagged QUEUECTL_KEY_PREFIX such as "
                "{queuectl}")
    kind = classify(exc)
    if kind is Failure.REFUSED:
        return _refused_message(exc, where, text)
    if kind is Failure.OUTAGE:
        return f"cannot reach Redis at {where}: {text}"
    return f"Redis error at {where}: {text}"


def _refused_message(exc: BaseException, where: str, text: str) -> str:
    if isinstance(exc, PermissionDeniedError | NoPermissionError) or "NOPERM" in text:
        if isinstance(exc, PermissionDeniedError):
            return text  # the script's own words, which name the command and key
        return (f"Redis at {where} refused a command QueueCTL needs ({text}); grant the "
                "ACL that `queuectl acl SERVICE` prints (README: Least-privilege ACLs)")
    if text.startswith("DENIED"):
        # Redis's own text is a paragraph of advice; one line names the two fixes.
        return (f"Redis at {where} refused the connection: it runs in protected mode "
                "(no password set, and this client is not on its loopback interface); "
                "give it a password (requirepass or an ACL user) or protected-mode no")
    return f"Redis at {where} refused the credentials: {text}"


class Backoff:
    """Retries a Redis operation through outages; one instance per loop that retries.

    ``call`` returns the operation's result, or None when ``stop`` was set while
    Redis was away. Refused credentials/permissions raise ``RedisRefusedError`` (one
    line, exit 6); other errors propagate unchanged.
    """

    def __init__(self, what: str, url: str, stop: threading.Event,
                 log: logging.Logger, monitor: BackoffMonitor | None = None,
                 cap: float = BACKOFF_MAX) -> None:
        self.what = what
        self.url = url
        self.stop = stop
        self.log = log
        self.monitor = monitor
        self.cap = max(BACKOFF_MIN, min(cap, BACKOFF_MAX))
        self.delay = BACKOFF_MIN
        self.down_since: float | None = None
        self.outages = 0  # how many outages began; a caller can tell one happened

    def call(self, operation: Callable[[], T]) -> T | None:
        while True:
            try:
                result = operation()
            except Exception as exc:
                if not self.failed(exc):
                    raise
                if self.stop.wait(self.delay):
                    return None
                if self.monitor is not None:
                    self.monitor.waited()
                self.delay = min(self.delay * 2, self.cap)
                continue
            self.recovered()
            return result

    def failed(self, exc: BaseException) -> bool:
        """Note a failure; True if it is an outage worth waiting out (raises Refused)."""
        kind = classify(exc)
        if self.monitor is not None and (kind is not Failure.OTHER
                                         or isinstance(exc, redis.RedisError)):
            self.monitor.failed(self.what, exc, kind is Failure.OUTAGE)
        if kind is Failure.REFUSED:
            raise RedisRefusedError(redis_error_message(exc, self.url)) from None
        if kind is not Failure.OUTAGE:
            return False
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.outages += 1
            self.log.warning("%s: Redis at %s unavailable (%s); retrying with back-off up "
                             "to %gs", self.what, mask_url(self.url),
                             error_text(exc, self.url), self.cap)
        return True

    def recovered(self) -> None:
        if self.monitor is not None:
            self.monitor.recovered(self.what)
        if self.down_since is not None:
            self.log.info("%s: Redis is back after %.1fs", self.what,
                          time.monotonic() - self.down_since)
            self.down_since = None
        self.delay = BACKOFF_MIN
