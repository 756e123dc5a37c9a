"""The rate limiter on Redis: one Lua script per decision, so several Loupe processes share limits.

The script reads Redis's own clock (TIME), so processes need no synchronised clocks, and checks
and updates every bucket of a request atomically. Arrival times are stored as decimal strings
with microseconds and expire when the bucket would be full again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import redis

from loupe.billing.ratelimit import WINDOW_S, Bucket, Decision, gcra
from loupe.errors import ServiceUnavailable

# KEYS: bucket keys. ARGV: window, then limit and cost per bucket.
# Returns {now, then per bucket: fits (0/1) and its arrival time before ("" when absent)}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local allowed = 1
local fits, before, after = {}, {}, {}
for i = 1, #KEYS do
  local limit, cost = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local stored = redis.call('GET', KEYS[i])
  before[i] = stored or ''
  local tat = now
  if stored and tonumber(stored) > now then tat = tonumber(stored) end
  after[i] = tat + cost * window / limit
  fits[i] = 1
  if cost > limit or after[i] - now > window + 0.000001 then fits[i], allowed = 0, 0 end
end
if allowed == 1 then
  for i = 1, #KEYS do
    local ttl = math.ceil((after[i] - now) * 1000) + 1
    redis.call('SET', KEYS[i], string.format('%.6f', after[i]), 'PX', ttl)
  end
end
local out = {string.format('%.6f', now)}
for i = 1, #KEYS do
  out[#out + 1] = fits[i]
  out[#out + 1] = before[i]
end
return out
"""

# KEYS: bucket keys. ARGV: window, then limit and cost per bucket. Moves arrival times back.
_REFUND = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
for i = 1, #KEYS do
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local limit, cost = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    local tat = tonumber(stored) - cost * window / limit
    if tat > now then
      redis.call('SET', KEYS[i], string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000) + 1)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 0
"""


class RedisRateLimiter:
    """GCRA buckets in Redis under `prefix`; the same contract as the in-process limiter.

    `client` is a synchronous redis-py client (call from a worker thread in async code).
    Raises ServiceUnavailable when Redis cannot be reached: limits are never silently skipped.
    """

    def __init__(self, client: redis.Redis, prefix: str = "loupe:ratelimit:") -> None:
        self._client = client
        self._prefix = prefix
        self._acquire = client.register_script(_ACQUIRE)
        self._refund = client.register_script(_REFUND)

    def acquire(self, buckets: Sequence[Bucket]) -> Decision:
        if not buckets:
            return Decision(True, ())
        with _unavailable_as_error():
            reply: list[Any] = self._acquire(keys=self._keys(buckets), args=self._args(buckets))
        now = float(_text(reply[0]))
        states = []
        for i, bucket in enumerate(buckets):
            fits, stored = bool(int(reply[1 + 2 * i])), _text(reply[2 + 2 * i])
            _, state = gcra(now, float(stored) if stored else None, bucket)
            if state.allowed != fits:  # the script's verdict wins at the rounding boundary
                state = replace(state, allowed=fits, retry_after_s=None if fits else 0.0)
            states.append(state)
        return Decision(all(s.allowed for s in states), tuple(states))

    def refund(self, buckets: Sequence[Bucket]) -> None:
        if buckets:
            with _unavailable_as_error():
                self._refund(keys=self._keys(buckets), args=self._args(buckets))

    def _keys(self, buckets: Sequence[Bucket]) -> list[str]:
        return [self._prefix + b.name for b in buckets]

    @staticmethod
    def _args(buckets: Sequence[Bucket]) -> list[str | int]:
        args: list[str | int] = [repr(WINDOW_S)]
        for bucket in buckets:
            args += [bucket.limit, bucket.cost]
        return args


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise ServiceUnavailable(f"the rate-limit store (Redis) is unavailable: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
