"""A chat request as every layer sees it: turns, content parts, tools, sampling and constraints."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from loupe.domain.media import ImageRef, PreparedImage, PlannedImage, VideoRef, PlannedVideo, PreparedVideo


class Role(str, enum.Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


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
