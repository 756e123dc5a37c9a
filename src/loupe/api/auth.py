"""Who is calling: the bearer key of a request, resolved by the accounts service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Security
from fastapi.security import HTTPBearer

from loupe.domain import RateLimitInfo
from loupe.logs import annotate
from loupe.service.accounts import Accounts, Caller


def bearer(request: Request) -> str | None:
    """The secret of `Authorization: Bearer <secret>`, or None when absent or another scheme."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    return secret.strip() or None if scheme.lower() == "bearer" else None


# Declares `Authorization: Bearer` in the OpenAPI document, so /docs offers "Authorize" and sends
# the key with "Try it out". The header itself is read by `bearer`, which also serves open servers.
_SCHEME = HTTPBearer(auto_error=False, description="An API key from `loupe keys create` (lp-...)")


def caller_dependency(accounts: Accounts, fresh: bool = False) -> Callable[..., Awaitable[Caller]]:
    """The request's caller; `fresh` resolves it from the database even when one is kept."""

    async def caller(request: Request, _declared: object = Security(_SCHEME)) -> Caller:
        found = await accounts.caller(bearer(request), fresh)
        annotate(key_id=found.key.id if found.key else None)
        return found

    return caller


def rate_limit_headers(info: RateLimitInfo | None) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers; a limit that is not set is not announced."""
    if info is None:
        return {}
    pairs = {
        "x-ratelimit-limit-requests": info.limit_requests,
        "x-ratelimit-remaining-requests": info.remaining_requests,
        "x-ratelimit-reset-requests": _seconds(info.reset_requests_s),
        "x-ratelimit-limit-tokens": info.limit_tokens,
        "x-ratelimit-remaining-tokens": info.remaining_tokens,
        "x-ratelimit-reset-tokens": _seconds(info.reset_tokens_s),
    }
    return {name: str(value) for name, value in pairs.items() if value is not None}


def _seconds(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}s"
