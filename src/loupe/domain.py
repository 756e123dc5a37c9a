"""Frozen values every layer shares: chat requests, image references, sampling, usage and events.

No HTTP, no torch: the API converts wire schemas into these, the service passes them to the
engines, and the engines answer with the events at the bottom of this module.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal


class Role(str, enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class Detail(str, enum.Enum):
    """OpenAI's `image_url.detail`."""

    LOW = "low"
    HIGH = "high"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image part as the client sent it: a data URL or an http(s) URL, not yet fetched.

    `param` locates it in the request (`messages[0].content[1].image_url`) for error reports.
    `detail` is None when the client did not say.
    """

    url: str
    detail: Detail | None
    param: str


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A decoded RGB image, validated and planned for the detail applied.

    `pixels` is upright RGB: a PIL image, or a uint8 array [height, width, 3] (a JPEG decoded
    whole; see `media.pixels`), typed loosely so this module imports neither;
    `width` x `height` is the size the model sees it at. The pixels may be larger (the decoded
    picture, or a DCT-scaled decode of it): each engine resizes them there, bicubic, with its
    fastest faithful resize.
    `content_hash` is a digest of the decoded pixels, for caches keyed by content.
    `tokens` is what the model family's counter planned for it; `processor_overrides` are the
    per-image processor arguments the plan needs (`do_image_splitting=False` for SmolVLM low).
    """

    pixels: Any
    width: int
    height: int
    original_width: int
    original_height: int
    detail: Detail
    content_hash: str
    tokens: int = 0
    processor_overrides: tuple[tuple[str, bool | int], ...] = ()


def nested_overrides(pairs: tuple[tuple[str, bool | int], ...]) -> dict[str, Any]:
    """(key, value) pairs as processor keyword arguments; a dotted key nests (`size.longest_edge`)."""
    kwargs: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        target = kwargs
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return kwargs


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """An image known only by its header: enough to count its tokens, not to run a model."""

    index: int
    width: int
    height: int
    detail: Detail | None
    detail_applied: Detail
    resized_width: int
    resized_height: int
    tokens: int


ContentPart = TextPart | ImageRef


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: tuple[ContentPart, ...]

    def images(self) -> tuple[ImageRef, ...]:
        return tuple(p for p in self.content if isinstance(p, ImageRef))


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """A message ready for an engine: text parts and prepared images in their order."""

    role: Role
    content: tuple[TextPart | PreparedImage | PlannedImage, ...]


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """What the client asked of generation. `max_tokens` None means: whatever the context leaves."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stream: bool = False
    include_usage: bool = False
    user: str | None = None

    def images(self) -> tuple[ImageRef, ...]:
        return tuple(img for m in self.messages for img in m.images())


@dataclass(frozen=True, slots=True)
class PromptStats:
    """What the engine's processor produced for a prompt: exact counts of consumed input ids."""

    prompt_tokens: int
    image_tokens: int

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    cached_tokens: int = 0

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text for choice `index`; `tokens` is how many tokens it took to produce it."""

    index: int
    text: str
    tokens: int


@dataclass(frozen=True, slots=True)
class ChoiceFinished:
    index: int
    reason: FinishReason
    completion_tokens: int


GenerationEvent = TextDelta | ChoiceFinished


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


@dataclass(frozen=True, slots=True)
class Estimate:
    """A pre-flight estimate: exact prompt tokens and the cost range, without running the model."""

    model: str
    prompt_tokens: int
    image_tokens: int
    images: tuple[PlannedImage, ...]
    max_completion_tokens: int
    prices: Prices

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens

    @property
    def cost_min(self) -> Decimal:
        return self.prices.cost(self.prompt_tokens, 0)

    @property
    def cost_max(self) -> Decimal:
        return self.prices.cost(self.prompt_tokens, self.max_completion_tokens)
