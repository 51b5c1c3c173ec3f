"""How Redis failures are told apart: an outage is waited out; refused credentials, a
command the ACL refuses and a server in protected mode stop a service with one line."""

from __future__ import annotations

import redis
from redis.exceptions import NoScriptError

from queuectl.core.resilience import Failure, classify, redis_error_message

URL = "redis://:s3cret@10.0.0.5:6379/0"
# Redis 7.0's reply to a client off its loopback interface while it has no password.
DENIED = ("DENIED Redis is running in protected mode because protected mode is enabled and "
          "no password is set for the default user. In this mode connections are only "
          "accepted from the loopback interface. If you want to connect from external "
          "computers to Redis you may adopt one of the following solutions: 1) Just disable "
          "protected mode sending the command 'CONFIG SET protected-mode no' ...")


def test_protected_mode_is_refused_and_said_in_one_line() -> None:
    exc = redis.ResponseError(DENIED)
    assert classify(exc) is Failure.REFUSED
    assert redis_error_message(exc, URL) == (
        "Redis at redis://:***@10.0.0.5:6379/0 refused the connection: it runs in protected "
        "mode (no password set, and this client is not on its loopback interface); give it "
        "a password (requirepass or an ACL user) or protected-mode no")


def test_outages_refusals_and_the_rest() -> None:
    assert classify(redis.ConnectionError("Connection refused")) is Failure.OUTAGE
    assert classify(redis.ResponseError("LOADING Redis is loading the dataset")) \
        is Failure.OUTAGE
    assert classify(redis.ResponseError("WRONGPASS invalid username-password pair")) \
        is Failure.REFUSED
    assert classify(redis.ResponseError("NOPERM this user has no permissions")) \
        is Failure.REFUSED
    assert classify(redis.ResponseError("ERR unknown command 'SCRIPT'")) is Failure.OTHER
    # A restart between redis-py's script reload and its retry: passes with the next call.
    assert classify(NoScriptError("No matching script. Please use EVAL.")) is Failure.OUTAGE
