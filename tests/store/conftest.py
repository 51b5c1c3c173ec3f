"""Fixtures for the store tier: each Lua script against real Redis, through Store.

``raw`` (decoded strings) and ``client.redis`` (bytes) inspect the keys the
scripts wrote; nothing is mocked.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from queuectl.core.client import Client
from queuectl.core.errors import PermissionDeniedError
from queuectl.core.keys import Keys
from queuectl.core.lua import script_source
from queuectl.core.models import JobSpec
from queuectl.core.policy import Policy
from queuectl.core.settings import PolicyDefaults
from queuectl.core.store import Fetched, Store
from tests.redis_server import wait_uptime

WORKER = "w1"  # the worker id lease() uses unless told otherwise

StoreFactory = Callable[..., Store]
Script = Callable[[list[str], list[Any]], Any]


# The longest worker TTL a store test reaps with.
REAP_TTL = 5.0


@pytest.fixture(scope="session", autouse=True)
def redis_up_a_ttl(redis_url: str) -> None:
    """reap.lua calls no worker dead until Redis has been up a TTL: a store test run
    within seconds of the session's Redis starting waits for that once."""
    wait_uptime(redis_url, REAP_TTL)


@pytest.fixture
def keys(client: Client) -> Keys:
    return client.keys


@pytest.fixture
def make_store(client: Client) -> StoreFactory:
    """A Store on the test's prefix with its own policy defaults and log cap."""

    def make(log_cap: int = 65536, **policy: Any) -> Store:
        return Store(client.redis, client.keys, PolicyDefaults(**policy), log_cap)

    return make


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    """Policy with the note's numbers: 3 retries, base 2, factor 2, no cap."""
    return make_store(max_retries=3, backoff_base=2.0, backoff_factor=2.0, backoff_max=0.0,
                      job_timeout=3600.0, completed_ttl=86400)


@pytest.fixture
def lua(client: Client) -> Iterator[Callable[[str], Script]]:
    """Call one script directly, for races that Store's own read-then-call cannot show."""
    def load(name: str) -> Script:
        script = client.redis.register_script(script_source(name))

        def call(keys: list[str], args: list[Any]) -> Any:
            return script(keys=keys, args=args)

        return call

    yield load


@pytest.fixture
def now(client: Client) -> Callable[[], float]:
    """Redis server time in epoch seconds: every script uses it, so the tests do too."""

    def read() -> float:
        secs, micros = client.redis.time()
        return float(secs) + micros / 1e6

    return read


@pytest.fixture
def lease() -> Callable[..., Fetched]:
    """Enqueue a job and fetch it at once: ``lease(store, spec, worker=WORKER)``."""

    def take(store: Store, job: JobSpec, worker: str = WORKER) -> Fetched:
        store.enqueue(job)
        fetched = store.fetch(worker, [job.queue])
        assert fetched is not None and fetched.id == job.id
        return fetched

    return take


@pytest.fixture
def make_due() -> Callable[[Store, str], None]:
    """Pull a job's retry (or delay) forward to now and promote it, without sleeping."""

    def pull(store: Store, job_id: str) -> None:
        k = store.keys
        for zset in (k.retry_queue, k.delayed):
            if store.redis.zscore(zset, job_id) is not None:
                store.redis.zadd(zset, {job_id: 0})
        assert store.promote_due(100).moved >= 1

    return pull


Refusal = Callable[[list[str], str, Callable[[Store], object]], None]


@pytest.fixture
def refused_with_nothing_written(raw: redis.Redis, redis_url: str, keys: Keys) -> Refusal:
    """``check(rules, match, call)``: ``call(store)``, with a store of an ACL user given
    ``rules`` on top of ``+@all``, answers NOPERM (``match``) and leaves every key of the
    prefix as it was."""

    def check(rules: list[str], match: str, call: Callable[[Store], object]) -> None:
        user = f"limited-{uuid.uuid4().hex[:8]}"
        raw.execute_command("ACL", "SETUSER", user, "on", ">pw", "+@all",  # type: ignore[no-untyped-call]
                            *rules)
        limited = redis.Redis.from_url(redis_url, username=user, password="pw",
                                       decode_responses=True)
        try:
            before = {key: raw.dump(key) for key in raw.scan_iter(f"{keys.prefix}:*")}
            with pytest.raises(PermissionDeniedError, match=match):
                call(Store(limited, keys, Policy()))
            assert {key: raw.dump(key) for key in raw.scan_iter(f"{keys.prefix}:*")} == before
        finally:
            limited.close()
            raw.acl_deluser(user)

    return check
