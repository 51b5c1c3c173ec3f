"""Work ahead: produce the next items of an iterator in a thread while the caller uses one.

Bulk enqueue sends a chunk and waits for Redis's answer; the wait releases the GIL, so a
thread can read and build the next chunk meanwhile. The thread runs at most ``depth``
items ahead (bounded memory), an exception it meets is raised in the caller at the item
where it happened, and leaving the ``with`` block stops it: items built but not yet
taken are dropped (an exception met after the caller stopped too: it concerns items the
caller never took), and the thread never outlives the block.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

# How long the producer waits for room before it looks again whether it was stopped.
_POLL = 0.05


class _End:
    """The last item a producer puts: the iterator ended, or raised ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Ahead(Generic[T]):
    """Iterate ``source`` in a thread, ``depth`` items ahead of the caller."""

    def __init__(self, source: Iterator[T], depth: int = 1) -> None:
        self._source = source
        self._items: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        # The caller's context (its current span, above all) is the producer's too.
        context = contextvars.copy_context()
        self._thread = threading.Thread(target=context.run, args=(self._produce,),
                                        name="queuectl-ahead", daemon=True)

    def __enter__(self) -> Ahead[T]:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(_POLL)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._items.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    def _drain(self) -> None:
        try:
            while True:
                self._items.get_nowait()
        except queue.Empty:
            pass

    def _produce(self) -> None:
        end = _End(None)
        try:
            for item in self._source:
                # Stopped: not one more item is made (the caller drains the queue).
                if not self._put(item) or self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the caller, never lost
            end = _End(exc)
        self._put(end)

    def _put(self, item: T | _End) -> bool:
        """Wait for room for ``item``; False when the caller stopped meanwhile."""
        while not self._stop.is_set():
            try:
                self._items.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False
