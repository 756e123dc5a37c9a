"""What an engine answers: the prompt's counts, text and tool-call deltas, finished choices, usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from loupe.domain.chat import ToolCall


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
