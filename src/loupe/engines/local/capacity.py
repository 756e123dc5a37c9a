"""How many requests an engine holds (queued or running), bounded: beyond it, 503 at once."""

from __future__ import annotations

import threading

from loupe.errors import ServiceUnavailable


class Capacity:
    """A thread-safe count of outstanding requests, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._count = 0
        self._lock = threading.Lock()

    @property
    def outstanding(self) -> int:
        return self._count

    def take(self) -> None:
        """Count one more request; raises ServiceUnavailable when `limit` are outstanding."""
        with self._lock:
            if self._count >= self._limit:
                raise ServiceUnavailable(f"the server is at capacity ({self._limit} requests queued); retry shortly")
            self._count += 1

    def give_back(self) -> None:
        with self._lock:
            self._count -= 1
