"""The embedded engine's text turned into tool calls, for requests that offered tools."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from loupe.domain import ChoiceFinished, GenerationEvent, TextDelta, TokenLogprob, ToolCallDelta
from loupe.models.tool_calls import ToolCallFormat, ToolCallParser


async def with_tool_calls(events: AsyncIterator[GenerationEvent], fmt: ToolCallFormat) -> AsyncGenerator[GenerationEvent, None]:
    """Each choice's text through its parser: content as TextDelta, calls as ToolCallDelta pieces
    as the model writes them; a choice that called a tool and ended by itself ends `tool_calls`.
    Token counts (and logprobs, on text) ride on the first event made of a delta, or on an empty
    delta while text is held."""
    parsers: dict[int, ToolCallParser] = {}
    async for event in events:
        parser = parsers.setdefault(event.index, ToolCallParser(fmt, event.index))
        if isinstance(event, TextDelta):
            tokens, logprobs = event.tokens, event.logprobs
            for piece in parser.feed(event.text):
                yield _counted(event.index, piece, tokens, logprobs)
                tokens, logprobs = 0, ()
            if tokens or logprobs:
                yield TextDelta(event.index, "", tokens, logprobs)
        elif isinstance(event, ChoiceFinished):
            for piece in parser.finish():
                yield _counted(event.index, piece, 0, ())
            ended = "tool_calls" if parser.calls and event.reason == "stop" else event.reason
            yield ChoiceFinished(event.index, ended, event.completion_tokens)
        else:
            yield event


def _counted(
    index: int, piece: str | ToolCallDelta, tokens: int, logprobs: tuple[TokenLogprob, ...]
) -> TextDelta | ToolCallDelta:
    if isinstance(piece, str):
        return TextDelta(index, piece, tokens, logprobs)
    return replace(piece, tokens=tokens) if tokens else piece
