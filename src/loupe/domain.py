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
    TOOL = "tool"


class Detail(str, enum.Enum):
    """OpenAI's `image_url.detail`."""

    LOW = "low"
    HIGH = "high"
    AUTO = "auto"


# What an image without `detail` gets: `auto`, as in OpenAI's API (full resolution only on request).
DEFAULT_DETAIL = Detail.AUTO


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
class SourceFile:
    """An image file as the client sent it, kept where any decoder makes of it exactly the
    picture Loupe decoded: a still JPEG, PNG or WebP stored as upright RGB (no EXIF turn, no
    transparency to flatten, no palette, grey or CMYK to convert). An upstream server given the
    file itself then sees the pixels Loupe counted, without a re-encoding."""

    data: bytes
    format: str  # jpeg, png or webp


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A decoded RGB image, validated and planned for the detail applied.

    `pixels` is upright RGB: a PIL image, or a uint8 array [height, width, 3] (a JPEG decoded
    whole; see `media.pixels`), typed loosely so this module imports neither;
    `width` x `height` is the size the model sees it at. The pixels may be larger (the decoded
    picture, or a DCT-scaled decode of it): each engine resizes them there, bicubic, with its
    fastest faithful resize.
    `content_hash` is the sha256 of the image's file (which decides the pixels), for caches keyed by content.
    `tokens` is what the model family's counter planned for it; `processor_overrides` are the
    per-image processor arguments the plan needs (`do_image_splitting=False` for SmolVLM low).
    `source` is the client's file where its pixels are exactly the file's (see `SourceFile`).
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
    source: SourceFile | None = None

    @property
    def resized(self) -> bool:
        """Whether the model sees it at another size than the picture's own."""
        return (self.width, self.height) != (self.original_width, self.original_height)


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


@dataclass(frozen=True, slots=True)
class VideoRef:
    """A video part as the client sent it: a data URL or an http(s) URL, not yet fetched.

    `fps` (frames sampled per second of video) and `max_frames` are None when the client did
    not say (the model's defaults apply); `detail` applies to every sampled frame.
    """

    url: str
    detail: Detail | None
    param: str
    fps: float | None = None
    max_frames: int | None = None


@dataclass(frozen=True, slots=True)
class VideoFrames:
    """The frames a video plan samples and the geometry the model sees them at.

    `indices` are frame numbers of the video (frame i is shown at i / `video_fps` s);
    `width` x `height` is each frame's planned size; `tokens` the placeholders the family's
    rules count for them (the prompt may add text around them: timestamps, a frame count).
    """

    indices: tuple[int, ...]
    video_fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    original_width: int
    original_height: int
    detail: Detail
    tokens: int


@dataclass(frozen=True, slots=True)
class PlannedVideo:
    """A video known only by its header: its plan, enough to count its tokens; `detail` is
    what the client asked (None: not said)."""

    index: int
    frames: VideoFrames
    detail: Detail | None = None


@dataclass(frozen=True, slots=True)
class PreparedVideo:
    """A video's sampled frames at their planned size: `pixels` is a uint8 array
    [frames, height, width, 3] (typed loosely, as PreparedImage's). `content_hash` keys the
    frames (the file, the indices and the size) for caches keyed by content."""

    pixels: Any
    frames: VideoFrames
    content_hash: str


ContentPart = TextPart | ImageRef | VideoRef


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model made: `arguments` is JSON text, as OpenAI sends it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Message:
    """A turn. An assistant turn may carry the calls it made; a tool turn answers `tool_call_id`."""

    role: Role
    content: tuple[ContentPart, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    def images(self) -> tuple[ImageRef, ...]:
        return tuple(p for p in self.content if isinstance(p, ImageRef))

    def videos(self) -> tuple[VideoRef, ...]:
        return tuple(p for p in self.content if isinstance(p, VideoRef))


@dataclass(frozen=True, slots=True)
class PromptMessage:
    """A message ready for an engine: text parts and prepared images in their order."""

    role: Role
    content: tuple[TextPart | PreparedImage | PlannedImage | PreparedVideo | PlannedVideo, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class JsonOutput:
    """The output is one JSON value that validates against `schema`, a JSON Schema as JSON text
    (OpenAI's `response_format` json_schema; json_object is `{"type": "object"}`)."""

    schema: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: `parameters` is its arguments' JSON Schema as JSON text."""

    name: str
    parameters: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallOutput:
    """The output is a call of one of `tools` (several calls when `parallel`), written in the
    model family's tool-call format, its arguments valid against the tool's parameters."""

    tools: tuple[ToolSpec, ...]
    parallel: bool = True


Constraint = JsonOutput | ToolCallOutput


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
    logprobs: bool = False
    top_logprobs: int = 0  # alternatives reported per token (0-20), with `logprobs`
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    constraint: Constraint | None = None  # decoding constrained by a grammar

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
    safety_identifier: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # OpenAI's `metadata`, kept with the ledger row
    # The functions the model is shown (none when `tool_choice` is "none"); a "required" or
    # named choice is `sampling.constraint`, a ToolCallOutput.
    tools: tuple[ToolSpec, ...] = ()

    def images(self) -> tuple[ImageRef, ...]:
        return tuple(img for m in self.messages for img in m.images())

    def videos(self) -> tuple[VideoRef, ...]:
        return tuple(video for m in self.messages for video in m.videos())


@dataclass(frozen=True, slots=True)
class PromptStats:
    """What the engine's processor produced for a prompt: exact counts of consumed input ids."""

    prompt_tokens: int
    image_tokens: int
    video_tokens: int = 0

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens - self.video_tokens


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    image_tokens: int
    cached_tokens: int = 0
    video_tokens: int = 0

    @property
    def text_tokens(self) -> int:
        return self.prompt_tokens - self.image_tokens - self.video_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


FinishReason = Literal["stop", "length", "tool_calls", "cancelled"]


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One candidate token: its text, log probability and UTF-8 bytes (OpenAI's shape)."""

    token: str
    logprob: float
    bytes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """A generated token with its log probability and the most likely candidates at its place."""

    token: str
    logprob: float
    bytes: tuple[int, ...]
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """New text for choice `index`; `tokens` is how many tokens it took to produce it, and
    `logprobs` their log probabilities when the request asked for them."""

    index: int
    text: str
    tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class ChoiceFinished:
    index: int
    reason: FinishReason
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of the `position`-th tool call of choice `index`, as OpenAI streams calls: the
    call's first piece carries its `id` and `name`, and the call's `arguments` are the text of
    its pieces joined in order."""

    index: int
    position: int
    arguments: str = ""
    tokens: int = 0
    id: str | None = None
    name: str | None = None

    @classmethod
    def whole(cls, index: int, position: int, call: ToolCall, tokens: int = 0) -> ToolCallDelta:
        """A call in one piece."""
        return cls(index, position, call.arguments, tokens, call.id, call.name)


GenerationEvent = TextDelta | ToolCallDelta | ChoiceFinished


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
