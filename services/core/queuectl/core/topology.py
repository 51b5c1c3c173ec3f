"""Redis Cluster and Redis Sentinel: the URLs that name them and the clients built for them.

Sentinel (the form of Celery's ``sentinel://`` broker URLs, redis-sentinel-url and
Prefect's ``redis+sentinel://``)::

    redis+sentinel://[user:password@]host1[:port1][,host2[:port2]...]/service_name[/db][?options]
    rediss+sentinel://...     TLS to the sentinels and to the data nodes

Sentinels default to port 26379. The user name and password are the data nodes'
(the master's); ``sentinel_username`` and ``sentinel_password`` options are the
sentinels' own. Every other option is a redis-py URL option of the data nodes.
The client asks the sentinels for the master (``Sentinel.master_for``) on every new
connection, so after a failover the next retry reaches the new master.

Cluster: ``QUEUECTL_REDIS_CLUSTER=true`` with ``redis://`` or ``rediss://`` naming one
or more nodes (``redis://host1:7000,host2:7000/0``); redis-py's ``RedisCluster``
learns the rest of the cluster from whichever answers first.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from queuectl.core.errors import InvalidInputError, RedisUnavailableError
from queuectl.core.redact import mask_url, redact
from queuectl.core.resilience import Backoff

SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379
# Options of the sentinels themselves, not of the data nodes.
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")

log = logging.getLogger("queuectl.connection")


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


@dataclass(frozen=True, slots=True)
class HostList:
    """A URL naming several hosts: ``url`` keeps only the first (what redis-py parses)."""

    url: str
    nodes: list[tuple[str, int]]


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:26379
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError("a host in the list is empty (two commas in a row?)")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("a port in the host list is not a number from 1 to 65535")
    return host, int(port) if port else default_port


def split_hosts(url: str, default_port: int) -> HostList:
    """Split ``scheme://[userinfo@]h1[:p1],h2[:p2]/rest`` into hosts and a one-host URL.

    The authority ends where urllib ends it (the first ``/``, ``?`` or ``#``) and
    the userinfo at its last ``@``, as redis-py reads a one-host URL; a password with
    an unencoded reserved character is then reported by ``url_problem``.
    """
    scheme, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    userinfo, at, hosts = rest[:end].rpartition("@")
    nodes = [_host_port(item, default_port) for item in hosts.split(",")]
    first = hosts.split(",")[0]
    return HostList(f"{scheme}://{userinfo}{at}{first}{rest[end:]}", nodes)


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    data_url: str  # redis[s]://[user:password@]first-sentinel/db?data-node options
    sentinel_options: dict[str, str]


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The parts of a ``redis+sentinel://`` URL; ValueError says what is wrong."""
    scheme, _, _ = url.partition("://")
    hosts = split_hosts(url, DEFAULT_SENTINEL_PORT)
    one = hosts.url.partition("://")[2]
    head, _, query = one.partition("?")
    authority, slash, path = head.partition("/")
    service, _, db = path.partition("/")
    if not slash or not service:
        raise ValueError("the master's service name is missing "
                         "(redis+sentinel://host:26379,host2:26379/SERVICE_NAME/0)")
    if db and not db.isdigit():
        raise ValueError("the database after the service name must be a number")
    options = parse_qsl(query, keep_blank_values=True)
    sentinel = {k: v for k, v in options if k in SENTINEL_OPTIONS}
    data_query = urlencode([(k, v) for k, v in options if k not in SENTINEL_OPTIONS])
    data_url = f"{SENTINEL_SCHEMES[scheme.lower()]}://{authority}/{db or '0'}"
    return SentinelTarget(hosts.nodes, service, data_url + (f"?{data_query}" if data_query
                                                            else ""), sentinel)


def sentinel_client(url: str, options: dict[str, Any]) -> redis.Redis:
    """A client of the master the sentinels name now, and after every failover."""
    target = parse_sentinel_url(url)
    data = parse_url(target.data_url)  # type: ignore[no-untyped-call]
    for name in ("host", "port", "path"):
        data.pop(name, None)
    tls = data.pop("connection_class", None) is redis.SSLConnection
    ssl = {k: v for k, v in data.items() if k.startswith("ssl_")}
    # The sentinels answer one small command each: a short timeout lets a dead sentinel
    # be skipped quickly for the next one.
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": options["socket_connect_timeout"], "socket_timeout": 3.0,
        "username": target.sentinel_options.get("sentinel_username"),
        "password": target.sentinel_options.get("sentinel_password"),
    }
    if tls:
        sentinel_kwargs.update(ssl=True, **ssl)
    manager = Sentinel(target.sentinels,  # type: ignore[no-untyped-call]
                       sentinel_kwargs=sentinel_kwargs)
    # SentinelConnectionPool picks its TLS connection class from ssl=True.
    kwargs = {**options, **data, **({"ssl": True} if tls else {})}
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
        target.service, **kwargs)
    return client


def cluster_client(url: str, options: dict[str, Any], prefix_key: str,
                   stop: threading.Event | None) -> redis.Redis:
    """A RedisCluster client (typed as Redis: it answers every command QueueCTL sends with
    the same signature). redis-py connects while building it: with ``stop`` (a service)
    an unreachable cluster is waited for with back-off; without (the CLI) it is an error."""
    hosts = split_hosts(url, DEFAULT_REDIS_PORT)
    nodes = [ClusterNode(host, port)  # type: ignore[no-untyped-call]
             for host, port in hosts.nodes]

    def build() -> RedisCluster:
        try:
            return RedisCluster.from_url(hosts.url, startup_nodes=nodes, **options)
        except RedisClusterException as exc:
            text = redact(str(exc), url)
            if "db" in text and "cluster mode" in text:
                raise InvalidInputError(f"invalid QUEUECTL_REDIS_URL {mask_url(url)}: a "
                                        "Redis Cluster has only database 0") from None
            # Unreachable nodes, or a server that is not in cluster mode.
            raise RedisUnavailableError(f"cannot use Redis Cluster at {mask_url(url)}: "
                                        f"{text}") from None

    if stop is None:
        client = build()
    else:
        built = Backoff("connect", url, stop, log).call(build)
        if built is None:
            raise RedisUnavailableError("stopped before the Redis Cluster answered")
        client = built
    # Commands without keys (TIME, INFO, PING) go to the default node: make it the one
    # that holds the prefix's slot, so that TIME is the clock the scripts read.
    owner = client.get_node_from_key(prefix_key)  # type: ignore[no-untyped-call]
    client.set_default_node(owner)  # type: ignore[no-untyped-call]
    return client  # type: ignore[return-value]


def node_of(client: redis.Redis, key: str) -> redis.Redis:
    """The client of the one server that holds ``key``: itself, or on a cluster the
    client of the node that owns its slot (a WAIT must follow the write on one
    connection of one server)."""
    if isinstance(client, RedisCluster):
        node = client.get_node_from_key(key)
        answer: redis.Redis = client.get_redis_connection(node)
        return answer
    return client
