"""What the platform says of its models and a key's limits: cards, detail rules, prices,
compute, pre-flight estimates and rate-limit figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from loupe.domain.media import PlannedImage, PlannedVideo


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The numbers behind x-ratelimit-{limit,remaining,reset}-{requests,tokens}; None: no limit.

    Resets are seconds until the bucket is full again.
    """

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


@dataclass(frozen=True, slots=True)
class Prices:
    """Per million tokens, in the catalogue's currency; image tokens are billed as input."""

    input_per_m: Decimal = Decimal(0)
    output_per_m: Decimal = Decimal(0)
    currency: str = "USD"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        million = Decimal(1_000_000)
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / million


@dataclass(frozen=True, slots=True)
class DetailRule:
    """What one `detail` value does for a model, in words, with its token figure where fixed."""

    detail: str
    rule: str
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Compute:
    """Where an embedded model computes, in which dtype, and why that dtype (for /health)."""

    device: str
    dtype: str
    reason: str


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What `/v1/models` says of a served model."""

    id: str
    created: int
    owned_by: str
    family: str
    checkpoint: str
    context_size: int
    max_images: int
    prices: Prices = field(default_factory=Prices)
    detail_rules: tuple[DetailRule, ...] = ()
    max_videos: int = 0  # videos in one request (0: the model takes none)
    vocab_size: int = 0  # token ids `logit_bias` may name: 0 to vocab_size - 1 (0: unchecked)
    # OpenAI's `system_fingerprint`: changes when the weights or the engine's configuration do.
    fingerprint: str = "fp_unknown"


@dataclass(frozen=True, slots=True)
class Estimate:
    """A pre-flight estimate: exact prompt tokens and the cost range, without running the model."""

    model: str
    prompt_tokens: int
    image_tokens: int
    images: tuple[PlannedImage, ...]
    max_completion_tokens: int
    prices: Prices
    video_tokens: int = 0
    videos: tuple[PlannedVideo, ...] = ()

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens - self.video_tokens

    @property
    def cost_min(self) -> Decimal:
        return self.prices.cost(self.prompt_tokens, 0)

    @property
    def cost_max(self) -> Decimal:
        return self.prices.cost(self.prompt_tokens, self.max_completion_tokens)
