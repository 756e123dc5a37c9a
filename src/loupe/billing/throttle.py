"""Which rate limits apply to a request, and what a refusal or an admission reports.

A key has its own `rpm`/`tpm`; each model may also have an `rpm`/`tpm` that every key gets
separately on that model (configured per model, applied per (key, model)). The numbers returned
are those of the tightest limit, for OpenAI's `x-ratelimit-*` headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loupe.domain import RateLimitInfo

from loupe.errors import RateLimitExceeded, TokenLimitExceeded, whole_seconds
from loupe.billing.ratelimit import Bucket, BucketState, Kind, RateLimiter


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests and tokens per minute; None means no limit."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for value in (self.rpm, self.tpm):
            if value is not None and value < 1:
                raise ValueError("rate limits must be at least 1, or None")


@dataclass(frozen=True, slots=True)
class Drawn:
    """What an admission took from the limiter; tokens it did not use can be given back."""

    info: RateLimitInfo
    token_buckets: tuple[Bucket, ...] = ()


class Throttle:
    """Applies key and per-model limits through one limiter."""

    def __init__(self, limiter: RateLimiter, model_limits: Mapping[str, Limits] | None = None) -> None:
        self._limiter = limiter
        self._model_limits = dict(model_limits or {})

    def take(self, key_id: str, key_limits: Limits, model: str, tokens: int) -> Drawn:
        """Draw one request and `tokens` tokens. Raises RateLimitExceeded or TokenLimitExceeded."""
        # The {key_id} hash tag keeps one key's buckets in one Redis Cluster slot.
        scopes = ((f"{{{key_id}}}", key_limits), (f"{{{key_id}}}:{model}", self._model_limits.get(model, Limits())))
        kinds: list[Kind] = []
        buckets: list[Bucket] = []
        for scope, limits in scopes:
            if limits.rpm is not None:
                kinds.append("requests")
                buckets.append(Bucket(f"{scope}:requests", limits.rpm, 1))
            if limits.tpm is not None:
                kinds.append("tokens")
                buckets.append(Bucket(f"{scope}:tokens", limits.tpm, tokens))
        if not buckets:
            return Drawn(RateLimitInfo())
        decision = self._limiter.acquire(buckets)
        info = _info(kinds, decision.states)
        if not decision.allowed:
            raise _refusal(kinds, decision.states, info, tokens)
        token_buckets = tuple(b for k, b in zip(kinds, buckets, strict=True) if k == "tokens")
        return Drawn(info, token_buckets)

    def give_back(self, drawn: Drawn, unused_tokens: int) -> None:
        """Return tokens drawn at admission but not used (prompt + max completion - actual)."""
        if unused_tokens > 0 and drawn.token_buckets:
            self._limiter.refund([Bucket(b.name, b.limit, min(unused_tokens, b.cost)) for b in drawn.token_buckets])


def _info(kinds: list[Kind], states: tuple[BucketState, ...]) -> RateLimitInfo:
    fields: dict[str, int | float] = {}
    for kind in ("requests", "tokens"):
        mine = [s for k, s in zip(kinds, states, strict=True) if k == kind]
        if mine:
            tightest = min(mine, key=lambda s: (s.remaining, -s.reset_s))
            fields |= {
                f"limit_{kind}": tightest.limit,
                f"remaining_{kind}": tightest.remaining,
                f"reset_{kind}_s": tightest.reset_s,
            }
    return RateLimitInfo(**fields)  # type: ignore[arg-type]


def _refusal(
    kinds: list[Kind], states: tuple[BucketState, ...], info: RateLimitInfo, tokens: int
) -> RateLimitExceeded | TokenLimitExceeded:
    denied = [(k, s) for k, s in zip(kinds, states, strict=True) if not s.allowed]
    requests = [s for k, s in denied if k == "requests"]
    if requests:
        wait = max(s.retry_after_s or 0.0 for s in requests)
        full = max(s.reset_s for s in requests)
        return RateLimitExceeded(
            f"rate limit of {requests[0].limit} requests per minute reached: the next request fits in "
            f"{whole_seconds(wait)}s (retry-after); all {requests[0].limit} are available again in "
            f"{whole_seconds(full)}s (x-ratelimit-reset-requests)",
            info=info,
            retry_after_s=wait,
        )
    too_big = [s for _, s in denied if s.retry_after_s is None]
    if too_big:
        return TokenLimitExceeded(
            f"this request needs {tokens} tokens (prompt + max completion), more than the limit of "
            f"{too_big[0].limit} tokens per minute; lower max_tokens or shorten the prompt",
            info=info,
        )
    wait = max(s.retry_after_s or 0.0 for _, s in denied)
    full = max(s.reset_s for _, s in denied)
    return TokenLimitExceeded(
        f"token limit of {denied[0][1].limit} per minute reached: this request's {tokens} tokens fit in "
        f"{whole_seconds(wait)}s (retry-after); the whole limit is available again in {whole_seconds(full)}s "
        "(x-ratelimit-reset-tokens)",
        info=info,
        retry_after_s=wait,
    )
