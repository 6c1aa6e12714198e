"""A bounded queue that never blocks its producer and never lets the consumer lag."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ThinningQueue(Generic[T]):
    """Bounded FIFO; when full, every other waiting item is dropped before the new one goes in.

    Items arrive one per distance window (the sampler's rule), so dropping every other one
    doubles the spacing of what waits: a detector that falls behind sees the road at a coarser
    but still even spacing, and never a backlog of stale frames.

    >>> q = ThinningQueue(4)
    >>> for i in range(5):
    ...     q.put(i)
    >>> [q.get(0) for _ in range(3)], q.dropped
    ([0, 2, 4], 2)
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, maxsize)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: T) -> None:
        with self._cond:
            if self._closed:
                return
            if len(self._items) >= self.maxsize:
                kept = list(self._items)[::2]
                self.dropped += len(self._items) - len(kept)
                self._items = deque(kept)
            self._items.append(item)
            self._cond.notify()

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None after ``timeout`` seconds (or at once when closed and empty)."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        """No more items: ``get`` returns what is left, then None without waiting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        with self._cond:
            return self._closed and not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
