"""The embedded engine's text turned into tool calls, for requests that offered tools."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from loupe.domain import ChoiceFinished, GenerationEvent, TextDelta, ToolCallDelta
from loupe.models.tool_calls import ToolCallFormat, ToolCallParser


async def with_tool_calls(events: AsyncIterator[GenerationEvent], fmt: ToolCallFormat) -> AsyncGenerator[GenerationEvent, None]:
    """Each choice's text through its parser: content as TextDelta, each call as a ToolCallDelta
    once its block closes; a choice that called a tool and ended by itself ends `tool_calls`.
    Token counts (and logprobs) ride on the first event made of a delta, or on an empty delta
    while a call's text is held."""
    parsers: dict[int, ToolCallParser] = {}
    async for event in events:
        parser = parsers.setdefault(event.index, ToolCallParser(fmt))
        if isinstance(event, TextDelta):
            tokens, logprobs = event.tokens, event.logprobs
            for piece in parser.feed(event.text):
                if isinstance(piece, str):
                    yield TextDelta(event.index, piece, tokens, logprobs)
                else:
                    yield ToolCallDelta(event.index, len(parser.calls) - 1, piece, tokens)
                tokens, logprobs = 0, ()
            if tokens or logprobs:
                yield TextDelta(event.index, "", tokens, logprobs)
        elif isinstance(event, ChoiceFinished):
            tail = parser.finish()
            if tail:
                yield TextDelta(event.index, tail, 0)
            ended = "tool_calls" if parser.calls and event.reason == "stop" else event.reason
            yield ChoiceFinished(event.index, ended, event.completion_tokens)
        else:
            yield event
