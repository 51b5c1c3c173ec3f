"""Cluster and Sentinel settings: hash tags, URL forms, one-line setting errors (no Redis)."""

from __future__ import annotations

import os

import pytest

from queuectl.core import acl
from queuectl.core.connection import connect
from queuectl.core.errors import InvalidInputError
from queuectl.core.keys import hash_tag
from queuectl.core.settings import Settings, load_settings
from queuectl.core.topology import parse_sentinel_url, split_hosts


@pytest.fixture(autouse=True)
def no_queuectl_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("QUEUECTL_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(("prefix", "tag"), [
    ("{queuectl}", "queuectl"), ("app:{jobs}", "jobs"), ("{a}{b}", "a"), ("x{y}z", "y"),
    ("queuectl", None), ("{}queuectl", None), ("{queuectl", None), ("}a{", None),
    # Cluster hashes what is between the first { and the first } after it: "{".
    ("{{a}", "{a"),
])
def test_hash_tag_follows_the_cluster_rule(prefix: str, tag: str | None) -> None:
    assert hash_tag(prefix) == tag


def test_split_hosts() -> None:
    hosts = split_hosts("redis://u:p%40w@h1:7000,h2,[::1]:7002/0?x=1", 6379)
    assert hosts.nodes == [("h1", 7000), ("h2", 6379), ("::1", 7002)]
    assert hosts.url == "redis://u:p%40w@h1:7000/0?x=1"
    for bad in ("redis://h1,,h2/0", "redis://h1:99999/0", "redis://h1:x/0"):
        with pytest.raises(ValueError, match=r"host list|empty"):
            split_hosts(bad, 6379)


def test_parse_sentinel_url() -> None:
    target = parse_sentinel_url("redis+sentinel://:pw@s1,s2:26380/mymaster/2"
                                "?sentinel_password=spw&socket_timeout=4")
    assert target.sentinels == [("s1", 26379), ("s2", 26380)]
    assert target.service == "mymaster"
    assert target.data_url == "redis://:pw@s1/2?socket_timeout=4"
    assert target.sentinel_options == {"sentinel_password": "spw"}
    tls = parse_sentinel_url("rediss+sentinel://s1/mymaster")
    assert tls.data_url == "rediss://s1/0"


@pytest.mark.parametrize(("url", "problem"), [
    ("redis+sentinel://s1:26379", "service name is missing"),
    ("redis+sentinel://s1:26379/", "service name is missing"),
    ("redis+sentinel://s1/mymaster/x", "must be a number"),
    ("redis+sentinel://s1,,s2/mymaster", "empty"),
    ("redis://h1:6379,h2:6379/0", "several hosts are for a Redis Cluster"),
])
def test_bad_sentinel_urls_are_invalid_settings(url: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match=problem) as caught:
        connect(Settings(redis_url=url))
    assert "\n" not in str(caught.value)


def test_cluster_needs_a_url_and_a_hash_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_REDIS_CLUSTER", "true")
    with pytest.raises(InvalidInputError, match="needs QUEUECTL_REDIS_URL to be a redis://"):
        load_settings()  # the embedded server is never a cluster
    monkeypatch.setenv("QUEUECTL_REDIS_URL", "redis+sentinel://s1/m")
    with pytest.raises(InvalidInputError, match="needs QUEUECTL_REDIS_URL to be a redis://"):
        load_settings()
    monkeypatch.setenv("QUEUECTL_REDIS_URL", "redis://n1:7000,n2:7000")
    with pytest.raises(InvalidInputError, match="'queuectl' has no hash tag"):
        load_settings()
    monkeypatch.setenv("QUEUECTL_KEY_PREFIX", "{queuectl}")
    assert load_settings().redis_cluster


def test_replica_ack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUECTL_REDIS_MIN_REPLICAS_ACK", "2")
    monkeypatch.setenv("QUEUECTL_REDIS_REPLICA_ACK_TIMEOUT", "0.5")
    s = load_settings()
    assert (s.redis_min_replicas_ack, s.redis_replica_ack_timeout) == (2, 0.5)
    monkeypatch.setenv("QUEUECTL_REDIS_REPLICA_ACK_TIMEOUT", "0")
    with pytest.raises(InvalidInputError, match="QUEUECTL_REDIS_REPLICA_ACK_TIMEOUT"):
        load_settings()


def test_wait_is_granted_only_where_writes_wait_for_replicas() -> None:
    assert "wait" not in acl.commands("worker")
    assert "wait" in acl.commands("worker", replicas=True)
    assert "wait" in acl.commands("cli", replicas=True)
    assert "wait" not in acl.commands("scheduler", replicas=True)
