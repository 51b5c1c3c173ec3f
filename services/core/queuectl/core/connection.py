"""Building the Redis client from settings, and turning Redis failures into QueueCtlErrors."""

from __future__ import annotations

import re
import threading
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from queuectl.core import embedded
from queuectl.core.errors import InvalidInputError
from queuectl.core.keys import Keys
from queuectl.core.redact import mask_url, redact, url_problem
from queuectl.core.scripting import Replicas
from queuectl.core.settings import Settings
from queuectl.core.store import Store
from queuectl.core.topology import cluster_client, is_sentinel_url, sentinel_client, split_hosts

_UNEXPECTED = re.compile(r"unexpected keyword argument '(\w+)'")


def redis_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on first use)."""
    if settings.redis_url:
        return settings.redis_url
    return embedded.ensure_running(settings.data_dir)


def connect(settings: Settings, *, retries: int = 2, socket_timeout: float = 30.0,
            stop: threading.Event | None = None) -> redis.Redis:
    """A client with bounded retries: the CLI fails fast, services loop on their own.

    The one place every client is built: a single server (redis://, rediss://, unix://),
    a Sentinel-managed master (redis+sentinel://) or a Redis Cluster
    (QUEUECTL_REDIS_CLUSTER=true). A URL that cannot work is an invalid setting
    (InvalidInputError, exit 3), found here before any connection is tried: Redis is
    not unreachable, the URL is wrong. ``stop`` lets a service wait for a cluster that
    does not answer yet (redis-py connects to a cluster while building the client).
    """
    url = redis_url(settings)
    sentinel = is_sentinel_url(url)
    checked = url
    if sentinel or settings.redis_cluster:
        try:
            checked = split_hosts(url, 0).url  # checked as the URL of its first host
        except ValueError as exc:
            raise _invalid_url(url, str(exc)) from None
    elif _several_hosts(url):
        raise _invalid_url(url, "several hosts are for a Redis Cluster "
                           "(QUEUECTL_REDIS_CLUSTER=true) or Sentinel (redis+sentinel://)")
    problem = url_problem(checked)
    if problem:
        # redis-py would take part of the password for the host and look it up in DNS.
        raise _invalid_url(url, problem)
    options: dict[str, Any] = {
        "decode_responses": False,
        "socket_connect_timeout": 3.0,
        "socket_timeout": socket_timeout,
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
        # Ids and fields another client wrote need not be UTF-8: decode and encode them
        # losslessly so that they can be read, shown and passed back to a script.
        "encoding_errors": "surrogateescape",
    }
    # A unix:// URL (the embedded server) makes a UnixDomainSocketConnection, which
    # rejects socket_keepalive with a TypeError: keepalive is a TCP option only.
    if not url.startswith("unix://"):
        options["socket_keepalive"] = True
    try:
        if settings.redis_cluster:
            return cluster_client(url, options, Keys(settings.key_prefix).config, stop)
        options["health_check_interval"] = 15
        client = sentinel_client(url, options) if sentinel else redis.Redis.from_url(
            url, **options)
    except (ValueError, TypeError) as exc:
        raise _invalid_url(url, redact(str(exc), url)) from None
    check_connection_options(client, url)
    return client


def _several_hosts(url: str) -> bool:
    try:
        return "://" in url and len(split_hosts(url, 0).nodes) > 1
    except ValueError:
        return False  # url_problem says what is wrong with it


def check_connection_options(client: redis.Redis, url: str) -> None:
    """Build one connection object, without connecting, so that a URL option redis-py
    does not know for its scheme (``ssl_password`` on redis://) is refused now, not
    as a TypeError at the first command."""
    pool = client.connection_pool
    try:
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        name = _UNEXPECTED.search(str(exc))
        scheme = url.partition("://")[0]
        what = f"option {name.group(1)!r}" if name else "an option"
        hint = " (TLS options need rediss://)" if name and "ssl" in name.group(1) else ""
        raise _invalid_url(url, f"{what} is not known for {scheme}:// URLs{hint}") from None
    except (ValueError, redis.RedisError) as exc:
        # redis-py checks some values here: ssl_cert_reqs=maybe, protocol=9.
        raise _invalid_url(url, redact(str(exc), url)) from None


def _invalid_url(url: str, problem: str) -> InvalidInputError:
    return InvalidInputError(f"invalid QUEUECTL_REDIS_URL {mask_url(url)}: {problem}")


def open_store(settings: Settings, *, policy_max_age: float = 0.0, socket_timeout: float = 30.0,
               stop: threading.Event | None = None) -> Store:
    """A Store on the configured Redis; services cache the runtime policy for up to
    ``policy_max_age`` seconds, the CLI reads it afresh."""
    client = connect(settings, socket_timeout=socket_timeout, stop=stop)
    return Store(client, Keys(settings.key_prefix), settings.policy, settings.log_tail_bytes,
                 policy_max_age=policy_max_age,
                 replicas=Replicas(settings.redis_min_replicas_ack,
                                   settings.redis_replica_ack_timeout))
