"""A least-recently-used map bounded by the bytes of what it holds (plain Python, no torch)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Values with their sizes; adding past `capacity` bytes evicts the least recently used.

    A value larger than the whole capacity is not kept. Capacity 0 keeps nothing.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, nbytes: int) -> None:
        self.pop(key)
        if nbytes > self._capacity:
            return
        self._items[key] = (value, nbytes)
        self._size += nbytes
        while self._size > self._capacity:
            _, (_, evicted) = self._items.popitem(last=False)
            self._size -= evicted

    def pop(self, key: K) -> V | None:
        item = self._items.pop(key, None)
        if item is None:
            return None
        self._size -= item[1]
        return item[0]

    def items(self) -> Iterator[tuple[K, V]]:
        """Every entry, least recently used first, without touching recency."""
        for key, (value, _) in list(self._items.items()):
            yield key, value
