from __future__ import annotations

import pytest
import redis

from loupe.billing import InProcessRateLimiter, Limits, RedisRateLimiter
from loupe.domain import RateLimitInfo
from loupe.errors import RateLimitExceeded, TokenLimitExceeded
from loupe.billing.ratelimit import RateLimiter
from loupe.billing.throttle import Throttle


@pytest.fixture(params=["in-process", "redis"])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "in-process":
        return InProcessRateLimiter()
    client: redis.Redis = request.getfixturevalue("redis_client")
    return RedisRateLimiter(client)


def test_no_limits_report_nothing(limiter: RateLimiter) -> None:
    assert Throttle(limiter).take("k", Limits(), "m", 10**9).info == RateLimitInfo()


def test_admission_reports_the_header_numbers(limiter: RateLimiter) -> None:
    info = Throttle(limiter).take("k", Limits(rpm=3, tpm=1000), "m", 400).info
    assert (info.limit_requests, info.remaining_requests) == (3, 2)
    assert (info.limit_tokens, info.remaining_tokens) == (1000, 600)
    assert info.reset_requests_s == pytest.approx(20, abs=0.5)
    assert info.reset_tokens_s == pytest.approx(24, abs=0.5)


def test_requests_over_the_limit(limiter: RateLimiter) -> None:
    throttle = Throttle(limiter)
    for _ in range(2):
        throttle.take("k", Limits(rpm=2), "m", 1)
    with pytest.raises(RateLimitExceeded) as caught:
        throttle.take("k", Limits(rpm=2), "m", 1)
    error = caught.value
    assert error.code == "RATE_LIMIT_EXCEEDED"
    assert error.retry_after_s == pytest.approx(30, abs=0.5)
    assert error.info is not None and (error.info.limit_requests, error.info.remaining_requests) == (2, 0)
    throttle.take("other", Limits(rpm=2), "m", 1)  # keys do not share budgets


def test_tokens_over_the_limit_and_a_request_too_large(limiter: RateLimiter) -> None:
    throttle = Throttle(limiter)
    throttle.take("k", Limits(tpm=1000), "m", 900)
    with pytest.raises(TokenLimitExceeded) as caught:
        throttle.take("k", Limits(tpm=1000), "m", 200)
    assert caught.value.code == "TOKEN_LIMIT_EXCEEDED"
    assert caught.value.retry_after_s == pytest.approx(6, abs=0.5)
    with pytest.raises(TokenLimitExceeded) as too_large:
        throttle.take("k2", Limits(tpm=1000), "m", 1001)
    assert too_large.value.retry_after_s is None and "1001" in too_large.value.message


def test_model_limits_apply_per_key_and_model(limiter: RateLimiter) -> None:
    throttle = Throttle(limiter, {"big": Limits(rpm=1)})
    throttle.take("k", Limits(rpm=100), "big", 1)
    with pytest.raises(RateLimitExceeded):
        throttle.take("k", Limits(rpm=100), "big", 1)
    throttle.take("k", Limits(rpm=100), "small", 1)
    throttle.take("k2", Limits(rpm=100), "big", 1)
    info = throttle.take("k3", Limits(rpm=100), "big", 1).info
    assert (info.limit_requests, info.remaining_requests) == (1, 0)  # the tightest is reported


def test_unused_tokens_are_given_back(limiter: RateLimiter) -> None:
    throttle = Throttle(limiter)
    drawn = throttle.take("k", Limits(tpm=1000), "m", 800)
    throttle.give_back(drawn, 700)
    assert throttle.take("k", Limits(tpm=1000), "m", 0).info.remaining_tokens == 900


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limits(rpm=0)


def test_the_token_limit_is_the_tightest_of_the_key_and_the_model() -> None:
    throttle = Throttle(InProcessRateLimiter(), {"big": Limits(tpm=500), "open": Limits(rpm=5)})
    assert throttle.token_limit(Limits(tpm=1000), "big") == 500
    assert throttle.token_limit(Limits(tpm=300), "big") == 300
    assert throttle.token_limit(Limits(), "big") == 500
    assert throttle.token_limit(Limits(tpm=1000), "open") == 1000
    assert throttle.token_limit(Limits(rpm=9), "other") is None
