"""Building the Redis client from settings, and turning Redis failures into QueueCtlErrors."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from queuectl.core import embedded
from queuectl.core.errors import RedisUnavailableError
from queuectl.core.keys import Keys
from queuectl.core.redact import mask_url, redact, url_problem
from queuectl.core.settings import Settings
from queuectl.core.store import Store


def redis_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on first use)."""
    if settings.redis_url:
        return settings.redis_url
    return embedded.ensure_running(settings.data_dir)


def connect(settings: Settings, *, retries: int = 2, socket_timeout: float = 30.0) -> redis.Redis:
    """A client with bounded retries: the CLI fails fast, services loop on their own."""
    url = redis_url(settings)
    problem = url_problem(url)
    if problem:
        # redis-py would take part of the password for the host and look it up in DNS.
        raise RedisUnavailableError(f"invalid QUEUECTL_REDIS_URL {mask_url(url)}: {problem}")
    # A unix:// URL (the embedded server) makes a UnixDomainSocketConnection, which
    # rejects socket_keepalive with a TypeError: keepalive is a TCP option only.
    tcp = {} if url.startswith("unix://") else {"socket_keepalive": True}
    try:
        return redis.Redis.from_url(
            url,
            decode_responses=False,
            socket_connect_timeout=3.0,
            socket_timeout=socket_timeout,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
            health_check_interval=15,
            # Ids and fields another client wrote need not be UTF-8: decode and encode them
            # losslessly so that they can be read, shown and passed back to a script.
            encoding_errors="surrogateescape",
            **tcp,
        )
    except ValueError as exc:
        raise RedisUnavailableError(
            f"invalid QUEUECTL_REDIS_URL {mask_url(url)}: {redact(str(exc), url)}"
        ) from None


def open_store(settings: Settings, *, policy_max_age: float = 0.0, **kwargs: float) -> Store:
    """A Store on the configured Redis; services cache the runtime policy for up to
    ``policy_max_age`` seconds, the CLI reads it afresh."""
    client = connect(settings, **kwargs)  # type: ignore[arg-type]
    return Store(client, Keys(settings.key_prefix), settings.policy, settings.log_tail_bytes,
                 policy_max_age=policy_max_age)
