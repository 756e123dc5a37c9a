"""Memory budgets: bytes that requests in progress may hold at once, the rest waiting in order.

Two are used. The image budget: from the moment its images are planned until its prompt has
been prefilled (its first event), a request holds its images' estimated bytes, the decoded
pixels and the model's pixel values (and its videos' sampled frames and theirs). The body budget (the HTTP layer's): a request holds its
body's bytes from before they are read until its response is complete. Leases beyond a budget
wait, in arrival order; one larger than the whole budget runs alone. So a burst of large
requests costs about the budgets, whatever their number.
"""

from __future__ import annotations

import asyncio
from collections import deque

# float32 pixel values, up to two frames per image (Qwen's temporal patches)
PIXEL_VALUE_BYTES = 3 * 4 * 2


def image_cost(size: tuple[int, int], resized: tuple[int, int]) -> int:
    """Bytes an image of `size` the model sees at `resized` may take in flight: its decoded RGB
    pixels (at most the whole picture) and its pixel values."""
    return size[0] * size[1] * 3 + resized[0] * resized[1] * PIXEL_VALUE_BYTES


class MemoryBudget:
    """Bytes held by requests in progress, bounded by `capacity` (0: unbounded)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def used(self) -> int:
        return self._used

    def lease(self) -> Lease:
        return Lease(self)

    async def _take(self, amount: int) -> int:
        amount = min(amount, self._capacity) if self._capacity else 0
        if not self._waiting and self._used + amount <= self._capacity or not amount:
            self._used += amount
            return amount
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append((amount, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give(amount)  # granted as it was cancelled
            else:
                self._waiting.remove((amount, waiter))
                self._wake()
            raise
        return amount

    def _give(self, amount: int) -> None:
        self._used -= amount
        self._wake()

    def _wake(self) -> None:
        while self._waiting and self._used + self._waiting[0][0] <= self._capacity:
            amount, waiter = self._waiting.popleft()
            if not waiter.done():
                self._used += amount
                waiter.set_result(None)


class Lease:
    """What one request holds of an `MemoryBudget`; `release` is idempotent."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self._held = 0

    async def take(self, amount: int) -> None:
        """Wait until `amount` more bytes fit the budget, and hold them."""
        self._held += await self._budget._take(amount)

    def release(self) -> None:
        held, self._held = self._held, 0
        if held:
            self._budget._give(held)
