"""Masking Redis URLs for output: the password and secret query values never show (no Redis)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from redis.connection import parse_url as _parse_url

from queuectl.core.redact import mask_url, redact, url_problem, url_secrets

HOSTILE = "p@ss:w/rd%#?&x"


def parse_url(url: str) -> dict[str, Any]:
    """redis-py's own URL parser (untyped upstream)."""
    kwargs: dict[str, Any] = _parse_url(url)  # type: ignore[no-untyped-call]
    return kwargs


@pytest.mark.parametrize(("url", "masked"), [
    # userinfo is everything before the LAST @ of the netloc, as urllib and redis-py read it
    ("redis://alice:p@ss@word@host:6379/0", "redis://alice:***@host:6379/0"),
    ("redis://alice:pa:ss@host:6379", "redis://alice:***@host:6379"),
    ("redis://alice:p%40ss%3Aw%25rd@host:6379/0", "redis://alice:***@host:6379/0"),
    (f"redis://alice:{quote(HOSTILE, safe='')}@host/0", "redis://alice:***@host/0"),
    ("redis://al%40ice:pw@h:1", "redis://al%40ice:***@h:1"),
    ("redis://:pw@h", "redis://:***@h"),
    ("redis://:pw@h:6379/3", "redis://:***@h:6379/3"),
    ("redis://alice@h:6379/2", "redis://alice@h:6379/2"),
    ("redis://alice:@h", "redis://alice:@h"),
    ("redis://h:6379/0", "redis://h:6379/0"),
    ("rediss://alice:pw@h:6380/0?ssl_ca_certs=/tmp/ca.pem",
     "rediss://alice:***@h:6380/0?ssl_ca_certs=/tmp/ca.pem"),
    ("rediss://h:6380?ssl_cert_reqs=required&ssl_check_hostname=true",
     "rediss://h:6380?ssl_cert_reqs=required&ssl_check_hostname=true"),
    # query parameters that carry secrets
    ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=***&db=1"),
    ("redis://h?PassWord=pw", "redis://h?PassWord=***"),
    ("redis://h?ssl_password=pw&username=bob", "redis://h?ssl_password=***&username=bob"),
    ("redis://h?auth_token=t&api_key=k&client_secret=s&passwd=p",
     "redis://h?auth_token=***&api_key=***&client_secret=***&passwd=***"),
    ("redis://h?pass%77ord=pw", "redis://h?pass%77ord=***"),
    ("redis://h?password=", "redis://h?password=***"),
    ("redis://h/0?password=a@b", "redis://h/0?password=***"),
    ("redis://u:pw@h?password=again", "redis://u:***@h?password=***"),
    # unix sockets, with and without userinfo
    ("unix:///tmp/redis.sock", "unix:///tmp/redis.sock"),
    ("unix:///tmp/redis.sock?db=2", "unix:///tmp/redis.sock?db=2"),
    ("unix://:pw@/tmp/redis.sock?db=0", "unix://:***@/tmp/redis.sock?db=0"),
    ("unix://alice:p@ss@/tmp/redis.sock", "unix://alice:***@/tmp/redis.sock"),
    ("unix:///tmp/redis.sock?password=pw", "unix:///tmp/redis.sock?password=***"),
    # IPv6 hosts stay as written
    ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ("redis://u:p@[::1]:6379/0", "redis://u:***@[::1]:6379/0"),
    ("rediss://:p@ss@[fe80::1%25eth0]:6380", "rediss://:***@[fe80::1%25eth0]:6380"),
    # a fragment is never sent to Redis and may be a password's tail
    ("redis://h:1/0#frag", "redis://h:1/0#***"),
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(("url", "masked"), [
    # an unencoded / ? or # in the password cuts urllib's netloc short: mask all before the last @
    ("redis://u:pa/ss@host:1/0", "redis://***@host:1/0"),
    ("redis://u:pa?ss@host", "redis://***@host"),
    ("redis://u:pa#ss@host", "redis://***@host"),
    ("redis://u:1234/ss@host", "redis://***@host"),
    ("redis://:12?ss@host:1?password=x", "redis://***@host:1?password=***"),
    ("unix://u:pa/ss@/tmp/redis.sock", "unix://***@/tmp/redis.sock"),
    ("redis://u:p@[::1", "redis://***@[::1"),
    ("redis://h:port", "redis://h:port"),
])
def test_misparsed_urls_are_masked_conservatively(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert url_problem(url) is not None


def test_a_query_value_with_an_at_is_masked() -> None:
    # redis://u:12?x=ss@host is read as host u, port 12: "12?x=ss" was the password.
    assert mask_url("redis://u:12?x=ss@host") == "redis://u:12?x=***"
    assert url_problem("redis://u:12?x=ss@host") is None  # redis-py reads it unambiguously


@pytest.mark.parametrize("garbage", [
    "", "garbage", "hunter2", "@@@", "p@ss word", "redis://", "://", "redis://@", "redis://:@",
    "redis://[", "redis://]", "redis://%", "redis://h:99999", "\x00\n\t", "redis://u:p\n@h",
    "http://user:pw@example.com", "redis:/u:pw@h", "redis:u:pw@h", "alice:pw@redis://h",
    "u:pw@redis://h/0?x=1", " redis://u:pw@h", "redis://u:pw@h:1/0\n",
])
def test_garbage_never_raises_and_shows_no_userinfo(garbage: str) -> None:
    masked = mask_url(garbage)
    assert isinstance(masked, str)
    for secret in ("hunter2", "pw", "p@ss", "garbage"):
        assert secret not in masked, masked


def test_not_a_url_is_masked_whole() -> None:
    # Something without a scheme may be a password pasted into the wrong variable.
    assert mask_url("hunter2") == "***"
    assert url_problem("hunter2") is None  # redis-py's own scheme check reports it


@pytest.mark.parametrize("url", [
    "redis://alice:p@ss@word@host:6379/0", f"redis://bob:{quote(HOSTILE, safe='')}@h:1/0",
    "rediss://:pw@h?ssl_ca_certs=/ca.pem", "unix://:pw@/tmp/redis.sock", "redis://h",
])
def test_mask_agrees_with_redis_py(url: str) -> None:
    """Host, port, user and db shown are the ones redis-py connects with; its password is not."""
    kwargs = parse_url(url)
    masked = mask_url(url)
    assert url_problem(url) is None
    if "password" in kwargs:
        assert kwargs["password"] not in masked
        assert quote(kwargs["password"], safe="") not in masked
        assert parse_url(masked)["password"] == "***"
    for name in ("host", "port", "db", "username", "path"):
        if name in kwargs:
            assert parse_url(masked).get(name) == kwargs[name], name


def test_redact_removes_raw_and_decoded_secrets_from_text() -> None:
    url = f"redis://bob:{quote(HOSTILE, safe='')}@h:1/0?ssl_password=k%2By"
    text = f"boom {HOSTILE} and {quote(HOSTILE, safe='')} and k+y and k%2By at h:1"
    out = redact(text, url)
    assert HOSTILE not in out and quote(HOSTILE, safe="") not in out
    assert "k+y" not in out and "k%2By" not in out
    assert out.endswith("at h:1")


def test_url_secrets_of_a_misparsed_url_cover_the_whole_userinfo() -> None:
    assert url_secrets("redis://u:pa/ss@host") == ["u:pa/ss"]
    assert url_secrets("redis://host:1/0") == []


@pytest.mark.parametrize("url", [
    "redis://h:6379/0", "rediss://u:p%40ss@h:1/0?ssl_ca_certs=/x/ca.pem", "unix:///tmp/r.sock",
    "redis://[::1]:1", "redis://h/0?password=a@b",
])
def test_well_formed_urls_have_no_problem(url: str) -> None:
    assert url_problem(url) is None


def test_problem_never_quotes_the_url() -> None:
    problem = url_problem("redis://u:secretpart/rest@host")
    assert problem is not None
    assert "secretpart" not in problem and "rest" not in problem
    assert "%40" in problem  # it says how to encode


def test_problem_names_the_likely_cause() -> None:
    assert "reserved character" in (url_problem("redis://u:pa/ss@h:1") or "")
    assert "reserved character" in (url_problem("redis://u:p@[::1") or "")
    assert "port is not a number" in (url_problem("redis://h:abc") or "")
    assert "unbalanced [" in (url_problem("redis://[::1") or "")
