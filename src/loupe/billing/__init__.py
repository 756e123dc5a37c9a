"""Billing: API keys, prices, balances with reservations, the exactly-once ledger, rate limits, usage."""

from loupe.billing.db import Database, normalize_url, open_database
from loupe.errors import (
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
from loupe.billing.money import cost_nanos, format_money, from_nanos, prices_of, to_nanos
from loupe.billing.ratelimit import InProcessRateLimiter, RateLimiter
from loupe.billing.ratelimit_redis import RedisRateLimiter
from loupe.billing.throttle import Limits
from loupe.billing.usage import UsageGroup, UsageReport, UsageTotals

__all__ = [
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
