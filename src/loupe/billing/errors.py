"""Billing's errors: authentication, model access, balance and rate limits (temporary home).

These belong in `loupe.errors`; they live here until they are moved. HTTP statuses the API
layer should map: INVALID_API_KEY 401, FAILED_TO_AUTH 401, ACCESS_DENY 403,
NOT_ENOUGH_BALANCE 403, RATE_LIMIT_EXCEEDED 429, TOKEN_LIMIT_EXCEEDED 429,
DUPLICATE_REQUEST_ID 409.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loupe.errors import LoupeError

if TYPE_CHECKING:
    from loupe.billing.throttle import RateLimitInfo


class InvalidApiKey(LoupeError):
    """No API key was sent (or it is not shaped like one)."""

    code = "INVALID_API_KEY"


class FailedToAuth(LoupeError):
    """The API key is unknown or revoked."""

    code = "FAILED_TO_AUTH"


class AccessDenied(LoupeError):
    """The key may not use the requested model."""

    code = "ACCESS_DENY"


class NotEnoughBalance(LoupeError):
    """The key's available balance does not cover the request's maximum cost."""

    code = "NOT_ENOUGH_BALANCE"


class DuplicateRequestId(LoupeError):
    """A request id was admitted twice; request ids must be unique."""

    code = "DUPLICATE_REQUEST_ID"


class RateLimited(LoupeError):
    """Base of the 429s. `info` carries the numbers for OpenAI's x-ratelimit-* headers.

    `retry_after_s` is None when waiting cannot help (one request needs more tokens than the
    per-minute limit allows).
    """

    code = "RATE_LIMIT_EXCEEDED"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        info: RateLimitInfo | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, param=param)
        self.info = info
        self.retry_after_s = retry_after_s


class RateLimitExceeded(RateLimited):
    """Too many requests per minute for the key (or the key on this model)."""

    code = "RATE_LIMIT_EXCEEDED"


class TokenLimitExceeded(RateLimited):
    """Too many tokens per minute for the key (or the key on this model)."""

    code = "TOKEN_LIMIT_EXCEEDED"
