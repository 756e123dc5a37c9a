"""The seam between the service and any engine (embedded transformers, or an upstream server)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from loupe.domain import GenerationEvent, ModelCard, PromptMessage, PromptStats, SamplingParams, ToolSpec


class PreparedPrompt(Protocol):
    """A prompt an engine has tokenized; opaque to callers except for its exact counts."""

    @property
    def stats(self) -> PromptStats: ...

    @property
    def cached_tokens(self) -> int:
        """Prompt tokens whose states the engine reused (known once generation has started)."""
        ...


class Engine(Protocol):
    """One served model.

    Engines know nothing of HTTP. Errors they raise are `loupe.errors.LoupeError` subclasses:
    `InvalidRequest` for prompts the model cannot take, `ServiceUnavailable` when the queue is
    full or the engine is closing, `EngineFailure` when a valid request failed inside.
    """

    @property
    def card(self) -> ModelCard: ...

    @property
    def outstanding(self) -> int:
        """Requests queued or running in this engine now."""
        ...

    async def prepare(self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = ()) -> PreparedPrompt:
        """Apply the chat template and the processor; count the input ids exactly. `tools` are
        the functions the model is shown; its calls of them come back as ToolCallDelta events."""
        ...

    async def check(self, sampling: SamplingParams) -> None:
        """Refuse (InvalidRequest, naming the field) what this engine cannot honour before
        anything runs: a JSON Schema keyword its grammar library cannot enforce. Idempotent;
        the embedded engine compiles and caches the grammar here."""
        ...

    async def count(self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = ()) -> PromptStats:
        """Exact prompt tokens for messages whose images are `PlannedImage`s, without running
        the image processor or the model: the pre-flight estimate."""
        ...

    def generate(
        self, prompt: PreparedPrompt, sampling: SamplingParams, max_tokens: int
    ) -> AsyncGenerator[GenerationEvent, None]:
        """Stream `TextDelta` (and `ToolCallDelta`) and one `ChoiceFinished` per choice (`sampling.n` choices).

        `max_tokens` is already fitted to the context. Closing the iterator early (the client
        went away) stops generation promptly.
        """
        ...

    async def start(self) -> None:
        """Begin serving (start threads); weights are loaded before. Idempotent."""
        ...

    async def close(self) -> None:
        """Stop serving: cancel running generations and release threads."""
        ...
