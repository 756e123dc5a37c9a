"""Per-minute rate limits on requests and tokens: the limiter Protocol, GCRA and the in-process limiter.

Each limit is a bucket refilled continuously over one minute (GCRA: a stored "theoretical arrival
time" per bucket), so a full bucket allows a burst of `limit` and then `limit` per minute. A
request draws from several buckets at once (the key's and the key-on-this-model's, requests and
tokens), all or none. Tokens are drawn as prompt + completion allowance at admission; the unused
part is given back at settle.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

WINDOW_S = 60.0
_EPS = 1e-6

Kind = Literal["requests", "tokens"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """Draw `cost` from a budget of `limit` per minute named `name` (shared across processes)."""

    name: str
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket after a decision. `retry_after_s` is None when allowed, or when it never fits."""

    limit: int
    remaining: int
    reset_s: float
    allowed: bool
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    states: tuple[BucketState, ...]


class RateLimiter(Protocol):
    """Where bucket state lives: this process, or a Redis shared by several."""

    def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        """Draw every bucket's cost if all fit, else draw nothing. States are in bucket order."""
        ...

    def refund(self, buckets: Sequence[Bucket]) -> None:
        """Give each bucket's cost back (never beyond a full bucket)."""
        ...


def gcra(now: float, tat: float | None, bucket: Bucket) -> tuple[float, BucketState]:
    """One GCRA step: the bucket's arrival time if the cost is drawn, and its state."""
    interval = WINDOW_S / bucket.limit
    start = now if tat is None else max(tat, now)
    after = start + bucket.cost * interval
    if bucket.cost <= bucket.limit and after - now <= WINDOW_S + _EPS:
        remaining = _floor((WINDOW_S - (after - now)) / interval)
        return after, BucketState(bucket.limit, remaining, after - now, True, None)
    remaining = _floor((WINDOW_S - (start - now)) / interval)
    retry = None if bucket.cost > bucket.limit else max(after - WINDOW_S - now, 0.0)
    return after, BucketState(bucket.limit, remaining, start - now, False, retry)


def refunded(now: float, tat: float, bucket: Bucket) -> float:
    return max(now, tat - bucket.cost * WINDOW_S / bucket.limit)


def _floor(value: float) -> int:
    return max(math.floor(value + _EPS), 0)


class InProcessRateLimiter:
    """Buckets in a dict behind a lock: exact within one process, thread- and asyncio-safe.

    The lock is held for microseconds and never across I/O, so async code may call it directly.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        with self._lock:
            now = self._clock()
            steps = [gcra(now, self._tats.get(b.name), b) for b in buckets]
            allowed = all(state.allowed for _, state in steps)
            if allowed:
                for bucket, (after, _) in zip(buckets, steps, strict=True):
                    self._tats[bucket.name] = after
                self._prune(now)
            return Decision(allowed, tuple(state for _, state in steps))

    def refund(self, buckets: Sequence[Bucket]) -> None:
        with self._lock:
            now = self._clock()
            for bucket in buckets:
                tat = self._tats.get(bucket.name)
                if tat is not None:
                    self._tats[bucket.name] = refunded(now, tat, bucket)

    def _prune(self, now: float) -> None:
        # A bucket whose arrival time has passed is full: forgetting it changes nothing.
        if len(self._tats) > self._max_buckets:
            self._tats = {name: tat for name, tat in self._tats.items() if tat > now}
