from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from loupe.billing.ratelimit import Bucket, InProcessRateLimiter, gcra


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_of_its_limit_then_refills_steadily() -> None:
    clock = Ticker()
    limiter = InProcessRateLimiter(clock)
    bucket = Bucket("k:requests", 6, 1)  # one every 10 s
    states = [limiter.acquire([bucket]).states[0] for _ in range(6)]
    assert [s.remaining for s in states] == [5, 4, 3, 2, 1, 0]
    assert states[-1].reset_s == pytest.approx(60)
    refused = limiter.acquire([bucket])
    assert not refused.allowed
    assert refused.states[0].retry_after_s == pytest.approx(10)
    clock.now += 9.9
    assert not limiter.acquire([bucket]).allowed
    clock.now += 0.1
    assert limiter.acquire([bucket]).allowed


def test_buckets_are_drawn_all_or_none() -> None:
    limiter = InProcessRateLimiter(Ticker())
    requests, tokens = Bucket("r", 10, 1), Bucket("t", 100, 80)
    assert limiter.acquire([requests, tokens]).allowed
    refused = limiter.acquire([requests, tokens])
    assert not refused.allowed
    assert [s.allowed for s in refused.states] == [True, False]
    # The refused draw took no request: nine remain after one more success.
    assert limiter.acquire([requests]).states[0].remaining == 8


def test_a_cost_above_the_limit_never_fits() -> None:
    _, state = gcra(0.0, None, Bucket("t", 100, 101))
    assert not state.allowed and state.retry_after_s is None


def test_refund_gives_tokens_back_up_to_a_full_bucket() -> None:
    limiter = InProcessRateLimiter(Ticker())
    assert limiter.acquire([Bucket("t", 100, 90)]).states[0].remaining == 10
    limiter.refund([Bucket("t", 100, 50)])
    assert limiter.acquire([Bucket("t", 100, 0)]).states[0].remaining == 60
    limiter.refund([Bucket("t", 100, 1000)])
    assert limiter.acquire([Bucket("t", 100, 0)]).states[0].remaining == 100


def test_threads_never_exceed_the_limit() -> None:
    limiter = InProcessRateLimiter()
    start = threading.Barrier(32)

    def attempt(_: int) -> bool:
        start.wait()
        return limiter.acquire([Bucket("k", 20, 1)]).allowed

    with ThreadPoolExecutor(32) as pool:
        assert sum(pool.map(attempt, range(32))) == 20


def test_full_buckets_are_forgotten() -> None:
    clock = Ticker()
    limiter = InProcessRateLimiter(clock, max_buckets=2)
    for name in "abc":
        limiter.acquire([Bucket(name, 60, 1)])
    clock.now += 61
    limiter.acquire([Bucket("d", 60, 1)])
    assert limiter.acquire([Bucket("a", 60, 0)]).states[0].remaining == 60
