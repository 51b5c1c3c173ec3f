"""How Redis failures are told apart: an outage is waited out (with capped back-off);
refused credentials, a command the ACL refuses and a server in protected mode stop a
service with one line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from redis.exceptions import NoScriptError

from queuectl.core.resilience import Backoff, Failure, classify, redis_error_message

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


class RecordedWaits(threading.Event):
    """A stop event that is never set and records each wait instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        return False


def failing(times: int) -> Callable[[], str]:
    calls = 0

    def operation() -> str:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise redis.ConnectionError("Connection refused")
        return "done"

    return operation


def test_back_off_doubles_up_to_its_cap_and_starts_over_after_a_success() -> None:
    stop = RecordedWaits()
    backoff = Backoff("test", URL, stop, logging.getLogger("test"))
    assert backoff.call(failing(8)) == "done"
    assert stop.waits == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    # A heartbeat's back-off is capped at its interval: once Redis answers again, it
    # beats within one interval, well inside its TTL.
    stop.waits.clear()
    capped = Backoff("heartbeat", URL, stop, logging.getLogger("test"), cap=0.5)
    assert capped.call(failing(4)) == "done"
    assert capped.call(failing(2)) == "done"
    assert stop.waits == [0.1, 0.2, 0.4, 0.5, 0.1, 0.2]
