"""gauges_lease.lua: one scheduler replica at a time exports the cluster gauges."""

from __future__ import annotations

import time

import pytest
import redis

from queuectl.core.errors import DataError
from queuectl.core.store import Store


def test_one_holder_renews_others_wait_until_it_expires(store: Store, raw: redis.Redis) -> None:
    key = store.keys.gauges_lease
    assert store.gauges_lease("a", 0.3)
    assert raw.get(key) == "a"
    assert not store.gauges_lease("b", 0.3)  # held by a: b exports nothing
    assert raw.get(key) == "a"
    assert store.gauges_lease("a", 5.0)  # a renews, for longer
    assert 3000 < raw.pttl(key) <= 5000
    raw.pexpire(key, 50)  # a stops renewing (it died)
    time.sleep(0.1)
    assert store.gauges_lease("b", 0.3)
    assert raw.get(key) == "b"


def test_a_lease_key_of_the_wrong_type_is_refused_untouched(store: Store,
                                                           raw: redis.Redis) -> None:
    key = store.keys.gauges_lease
    raw.rpush(key, "x")
    with pytest.raises(DataError, match="is a list, not a string"):
        store.gauges_lease("a", 1.0)
    assert raw.lrange(key, 0, -1) == ["x"]
