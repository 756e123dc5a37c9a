"""Key/value states of earlier sequences, found again by the longest common token prefix.

Plain Python: the states are opaque values here. A token is matched by its id, except image
placeholders, which are matched by the image they stand for (two images of the same size give
the same placeholder ids, never the same states): callers pass those as the image's key (a str).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Generic, TypeVar

from loupe.lru import ByteLRU

S = TypeVar("S")
Token = Hashable  # an int token id, or the str key of the image a placeholder stands for


class PrefixCache(Generic[S]):
    def __init__(self, capacity: int) -> None:
        self._entries: ByteLRU[tuple[Token, ...], S] = ByteLRU(capacity)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes of the states held."""
        return self._entries.size

    def store(self, tokens: Sequence[Token], states: S, nbytes: int) -> None:
        """Keep `states` for exactly `tokens` (one state per token, in order)."""
        if tokens:
            self._entries.put(tuple(tokens), states, nbytes)

    def lookup(self, tokens: Sequence[Token]) -> tuple[S | None, int]:
        """The entry sharing the longest prefix with `tokens`, and that prefix's length (0: none)."""
        best: tuple[Token, ...] | None = None
        best_length = 0
        for key, _ in self._entries.items():
            length = common_prefix(key, tokens)
            if length > best_length:
                best, best_length = key, length
        if best is None:
            return None, 0
        return self._entries.get(best), best_length


def common_prefix(a: Sequence[Token], b: Sequence[Token]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
