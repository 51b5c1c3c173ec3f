"""Ahead: a producer thread that stays at most `depth` items ahead, hands its exception to
the caller at the item where it happened, and never outlives its block."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from queuectl.core.prefetch import Ahead


class BoomError(Exception):
    pass


def counted(made: list[int], n: int, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        if i == fail_at:
            raise BoomError(f"item {i}")
        made.append(i)
        yield i


def wait_for(check: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.005)


def test_every_item_in_order() -> None:
    made: list[int] = []
    with Ahead(counted(made, 50), depth=2) as items:
        assert list(items) == list(range(50))


def test_the_producers_exception_reaches_the_caller_after_the_items_before_it() -> None:
    made: list[int] = []
    got: list[int] = []
    with pytest.raises(BoomError, match="item 3"), Ahead(counted(made, 10, fail_at=3)) as items:
        for i in items:
            got.append(i)
    assert got == [0, 1, 2]


def test_the_producer_stays_within_depth_and_stops_with_the_block() -> None:
    made: list[int] = []
    before = set(threading.enumerate())
    with Ahead(counted(made, 1000), depth=1) as items:
        first = next(iter(items))
        # One item taken, one waiting in the queue, one made and waiting for room.
        wait_for(lambda: len(made) == 3, "the producer did not fill its queue")
        time.sleep(0.05)
        assert (first, len(made)) == (0, 3)
    assert set(threading.enumerate()) == before, "the producer outlived its block"
    assert len(made) == 3


def test_an_exception_in_the_caller_stops_the_producer() -> None:
    made: list[int] = []
    before = set(threading.enumerate())
    with pytest.raises(BoomError), Ahead(counted(made, 1000), depth=2) as items:
        for i in items:
            if i == 1:
                raise BoomError("caller")
    assert set(threading.enumerate()) == before
    assert len(made) <= 5
