from __future__ import annotations

import loupe.billing
from loupe import errors
from tests.helpers import imports_of


def test_public_surface_is_pinned() -> None:
    assert sorted(loupe.billing.__all__) == [
        "Admission",
        "ApiKey",
        "Billing",
        "CreatedKey",
        "Database",
        "InProcessRateLimiter",
        "KeyStore",
        "Limits",
        "RateLimiter",
        "RedisRateLimiter",
        "Settlement",
        "UsageGroup",
        "UsageReport",
        "UsageTotals",
        "cost_nanos",
        "format_money",
        "from_nanos",
        "normalize_url",
        "open_database",
        "prices_of",
        "to_nanos",
        "upgrade",
    ]
    for name in loupe.billing.__all__:
        assert getattr(loupe.billing, name) is not None


def test_error_codes_are_the_documented_ones() -> None:
    assert {cls.__name__: cls.code for cls in (
        errors.InvalidApiKey,
        errors.FailedToAuth,
        errors.AccessDenied,
        errors.NotEnoughBalance,
        errors.RateLimitExceeded,
        errors.TokenLimitExceeded,
        errors.DuplicateRequestId,
    )} == {
        "InvalidApiKey": "INVALID_API_KEY",
        "FailedToAuth": "FAILED_TO_AUTH",
        "AccessDenied": "ACCESS_DENY",
        "NotEnoughBalance": "NOT_ENOUGH_BALANCE",
        "RateLimitExceeded": "RATE_LIMIT_EXCEEDED",
        "TokenLimitExceeded": "TOKEN_LIMIT_EXCEEDED",
        "DuplicateRequestId": "DUPLICATE_REQUEST_ID",
    }
    error = errors.TokenLimitExceeded("x")  # constructible with a message alone, like every LoupeError
    assert error.info is None and error.retry_after_s is None


def test_billing_imports_no_http_framework_and_no_torch() -> None:
    assert imports_of("loupe.billing", ("fastapi", "starlette", "torch", "transformers")) == []
