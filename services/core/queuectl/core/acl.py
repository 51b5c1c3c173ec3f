"""Least-privilege Redis ACLs: exactly the commands each service needs, on its own keys.

``queuectl acl SERVICE`` prints the ``ACL SETUSER`` line for one service. The lists
are the commands each service sends itself plus every command inside the scripts
it runs (a script's commands are checked against the caller's ACL). The tests run
every service under exactly its ACL, and check each script's commands against
these lists, so a new command cannot be used without being listed here.
"""

from __future__ import annotations

from collections.abc import Iterable

from queuectl.core.errors import InvalidInputError

# Which transition scripts each service calls.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "worker": ("fetch", "finish_fetch", "complete", "fail", "log_append", "release",
               "heartbeat", "unregister"),
    "scheduler": ("promote", "reap", "heartbeat", "prune", "prune_dead", "prune_queues",
                  "gauges_lease"),
    "cli": ("enqueue", "enqueue_batch", "cancel", "dlq_retry", "purge", "quarantine_retry",
            "quarantine_purge", "repair"),
}

# Commands every service sends itself: connecting, loading and running scripts, the
# runtime policy (P:config, read at most once a second). redis-py checks SCRIPT EXISTS
# before it pipelines script calls.
COMMON = ("ping", "select", "evalsha", "script|load", "script|exists", "hgetall")

# Commands a service sends directly, outside scripts.
DIRECT: dict[str, tuple[str, ...]] = {
    # exists: the log janitor asks whether a log file's job is still kept.
    "worker": ("blpop", "smembers", "hmget", "hget", "rpush", "expire", "exists"),
    # The cluster gauges read what `queuectl status` reads (llen, zcard, zcount, lrange).
    "scheduler": ("time", "zrange", "zrangebyscore", "smembers", "hget", "blpop", "multi",
                  "exec", "del", "zrem", "zremrangebyscore", "sscan", "llen", "zcard",
                  "zcount", "lrange"),
    "cli": ("time", "hget", "hmget", "get", "strlen", "lrange", "llen", "zrange", "zrevrange",
            "zcard", "zcount", "zscore", "zmscore", "smembers", "sscan", "zscan", "scan",
            "type", "info", "hset", "rpush", "expire", "multi", "exec", "del"),
}
# The services that send WAIT after their writes (an enqueue, a finish) when
# QUEUECTL_REDIS_MIN_REPLICAS_ACK asks for replicas.
WAITS_FOR_REPLICAS = ("worker", "cli")

# Every command the scripts call, by script (the test checks this against the sources).
SCRIPT_COMMANDS: dict[str, tuple[str, ...]] = {
    "fetch": ("type", "hmget", "llen", "lpop", "hset", "sadd", "lpush", "rpush", "zadd",
              "time"),
    # complete and fail share lib/outcome.lua, which holds both outcomes.
    "complete": ("type", "hmget", "sismember", "srem", "zadd", "hset", "append", "set",
                 "getrange", "hincrby", "zrange", "rpush", "sadd", "time"),
    "fail": ("type", "hmget", "sismember", "srem", "zadd", "hset", "append", "set",
             "getrange", "hincrby", "zrange", "rpush", "sadd", "time"),
    "finish_fetch": ("type", "hmget", "sismember", "srem", "zadd", "hset", "append", "set",
                     "getrange", "hincrby", "zrange", "rpush", "sadd", "llen", "lpop", "lpush",
                     "time"),
    "log_append": ("type", "hmget", "append", "set", "getrange", "hset"),
    "release": ("type", "hmget", "sismember", "srem", "zadd", "hset", "lpush", "rpush", "sadd",
                "time"),
    "heartbeat": ("type", "hmget", "hset", "pexpire", "zadd", "time"),
    "unregister": ("type", "hget", "scard", "del", "zrem"),
    "promote": ("type", "hmget", "zrangebyscore", "zrem", "zadd", "hset", "rpush",
                "zrange", "sadd", "time"),
    "reap": ("type", "hmget", "zscore", "exists", "info", "sismember", "srem", "scard", "zadd",
             "hset", "hincrby", "lpush", "rpush", "zrem", "del", "sadd", "time"),
    "prune": ("type", "zrangebyscore", "hmget", "zrem", "del", "time"),
    "prune_dead": ("type", "llen", "lindex", "hmget", "lpop", "zrem", "del", "time"),
    "prune_queues": ("type", "exists", "srem"),
    "gauges_lease": ("type", "get", "set"),
    "enqueue": ("type", "hmget", "hget", "zscore", "lrem", "zrem", "hdel", "del", "hset",
                "sadd", "zadd", "zrange", "lpush", "rpush", "time"),
    "enqueue_batch": ("type", "exists", "hmget", "hget", "zscore", "zcard", "lrem", "zrem",
                      "hdel", "del", "hset", "sadd", "zadd", "zrange", "rpush", "time"),
    "cancel": ("type", "hmget", "zscore", "lrem", "zrem", "srem", "hset", "zadd", "sadd",
               "time"),
    "dlq_retry": ("type", "hmget", "lrem", "hset", "zrem", "lpush", "rpush", "zadd", "sadd",
                  "time"),
    "purge": ("type", "hget", "lrem", "del", "zrem"),
    "quarantine_retry": ("type", "hmget", "zscore", "zrem", "hdel", "hset", "zadd", "lpush",
                         "rpush", "sadd", "time"),
    "quarantine_purge": ("type", "zrem", "hdel", "del", "zadd", "hset"),
    "repair": ("type", "hmget", "zscore", "lpos", "sismember", "lrem", "zrem", "srem", "zadd",
               "hset", "lpush", "rpush", "time"),
}

SERVICES = tuple(SCRIPTS)


def commands(service: str, *, replicas: bool = False) -> list[str]:
    """Every command ``service`` needs, sorted; ``replicas``: with replica acks (WAIT)."""
    if service not in SCRIPTS:
        raise InvalidInputError(f"unknown service {service!r} (known: {', '.join(SERVICES)})")
    wanted: set[str] = set(COMMON) | set(DIRECT[service])
    if replicas and service in WAITS_FOR_REPLICAS:
        wanted.add("wait")
    for script in SCRIPTS[service]:
        wanted |= set(SCRIPT_COMMANDS[script])
    return sorted(wanted)


# What `queuectl acl` prints in place of a password, for the operator to replace.
PASSWORD_PLACEHOLDER = "PASSWORD"  # noqa: S105 - a placeholder, not a secret


def setuser(service: str, prefix: str, user: str = "", password: str = PASSWORD_PLACEHOLDER,
            without: Iterable[str] = (), *, replicas: bool = False) -> list[str]:
    """The arguments of ``ACL SETUSER`` for ``service`` on the keys of ``prefix``."""
    drop = set(without)
    rules = ["on", f">{password}", "resetkeys", f"~{prefix}:*", "resetchannels", "-@all"]
    rules += [f"+{c}" for c in commands(service, replicas=replicas) if c not in drop]
    return [user or f"queuectl-{service}", *rules]
