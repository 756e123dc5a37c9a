from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from loupe.billing import RedisRateLimiter
from loupe.billing.ratelimit import Bucket
from loupe.errors import ServiceUnavailable

from .servers import free_port


def test_two_limiters_on_one_redis_share_one_budget(redis_url: str, redis_client: redis.Redis) -> None:
    first = RedisRateLimiter(redis.Redis.from_url(redis_url))
    second = RedisRateLimiter(redis.Redis.from_url(redis_url))
    bucket = Bucket("{key_1}:requests", 10, 1)
    allowed = [limiter.acquire([bucket]).allowed for _ in range(5) for limiter in (first, second)]
    assert allowed == [True] * 10
    refused = second.acquire([bucket])
    assert not refused.allowed and first.acquire([bucket]).allowed is False
    state = refused.states[0]
    assert state.remaining == 0 and state.retry_after_s == pytest.approx(6, abs=0.5)


def test_redis_draws_all_or_none_and_refunds(redis_client: redis.Redis) -> None:
    limiter = RedisRateLimiter(redis_client)
    requests, tokens = Bucket("{k}:requests", 10, 1), Bucket("{k}:tokens", 100, 80)
    first = limiter.acquire([requests, tokens])
    assert first.allowed and [s.remaining for s in first.states] == [9, 20]
    refused = limiter.acquire([requests, tokens])
    assert not refused.allowed and [s.allowed for s in refused.states] == [True, False]
    limiter.refund([Bucket("{k}:tokens", 100, 70)])
    after = limiter.acquire([requests, tokens])
    assert after.allowed and [s.remaining for s in after.states] == [8, 10]


def test_a_cost_above_the_limit_is_refused_for_good(redis_client: redis.Redis) -> None:
    state = RedisRateLimiter(redis_client).acquire([Bucket("{k}:tokens", 100, 101)]).states[0]
    assert not state.allowed and state.retry_after_s is None


def test_concurrent_processes_never_exceed_the_limit(redis_url: str, redis_client: redis.Redis) -> None:
    limiters = [RedisRateLimiter(redis.Redis.from_url(redis_url)) for _ in range(4)]
    start = threading.Barrier(40)

    def attempt(i: int) -> bool:
        start.wait()
        return limiters[i % 4].acquire([Bucket("{k}:requests", 25, 1)]).allowed

    with ThreadPoolExecutor(40) as pool:
        assert sum(pool.map(attempt, range(40))) == 25


def test_keys_expire_when_the_bucket_is_full_again(redis_client: redis.Redis) -> None:
    RedisRateLimiter(redis_client, prefix="p:").acquire([Bucket("{k}:requests", 60, 1)])
    ttl = redis_client.pttl("p:{k}:requests")
    assert 0 < ttl <= 1001


def test_an_unreachable_redis_is_a_service_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(ServiceUnavailable):
        RedisRateLimiter(client).acquire([Bucket("{k}:requests", 1, 1)])
