"""Billing: API keys, prices, balances with reservations, the exactly-once ledger, rate limits, usage."""

from loupe.billing.db import Database, normalize_url, open_database
from loupe.billing.errors import (
    AccessDenied,
    DuplicateRequestId,
    FailedToAuth,
    InvalidApiKey,
    NotEnoughBalance,
    RateLimited,
    RateLimitExceeded,
    TokenLimitExceeded,
)
from loupe.billing.facade import Admission, Billing, Settlement
from loupe.billing.keys import ApiKey, CreatedKey, KeyStore
from loupe.billing.migrate import upgrade
from loupe.billing.money import Prices, format_money, from_nanos, to_nanos
from loupe.billing.ratelimit import InProcessRateLimiter, RateLimiter
from loupe.billing.ratelimit_redis import RedisRateLimiter
from loupe.billing.throttle import Limits, RateLimitInfo
from loupe.billing.usage import UsageGroup, UsageReport, UsageTotals

__all__ = [
    "AccessDenied",
    "Admission",
    "ApiKey",
    "Billing",
    "CreatedKey",
    "Database",
    "DuplicateRequestId",
    "FailedToAuth",
    "InProcessRateLimiter",
    "InvalidApiKey",
    "KeyStore",
    "Limits",
    "NotEnoughBalance",
    "Prices",
    "RateLimitExceeded",
    "RateLimitInfo",
    "RateLimited",
    "RateLimiter",
    "RedisRateLimiter",
    "Settlement",
    "TokenLimitExceeded",
    "UsageGroup",
    "UsageReport",
    "UsageTotals",
    "format_money",
    "from_nanos",
    "normalize_url",
    "open_database",
    "to_nanos",
    "upgrade",
]
