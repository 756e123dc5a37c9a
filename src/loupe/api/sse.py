"""Server-sent events for streamed completions: framing written once, payloads from the schemas."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

from pydantic import BaseModel

from loupe.api import schemas as wire
from loupe.api.convert import call_chunk_to_wire, finish_to_wire, logprobs_to_wire, usage_to_wire
from loupe.api.errors import envelope, status_of
from loupe.domain import ChoiceFinished, GenerationEvent, TextDelta, ToolCallDelta
from loupe.errors import LoupeError, StreamStalled
from loupe.service.chat import ChatRun

DONE = b"data: [DONE]\n\n"


def frame(payload: BaseModel | dict[str, object]) -> bytes:
    if isinstance(payload, BaseModel):
        body = payload.model_dump_json(exclude_none=False)
    else:
        body = json.dumps(payload, separators=(",", ":"))
    return b"data: " + body.encode() + b"\n\n"


class ChunkWriter:
    """Turns one run's generation events into `chat.completion.chunk` objects."""

    def __init__(self, run: ChatRun) -> None:
        self._run = run
        self._started: set[int] = set()
        # One fingerprint for the whole stream, read once (an upstream card is rebuilt per read).
        self._fingerprint = run.engine.card.fingerprint

    def _chunk(self, choices: list[wire.ChunkChoice]) -> wire.ChatCompletionChunk:
        return wire.ChatCompletionChunk(
            id=self._run.id,
            created=self._run.created,
            model=self._run.request.model,
            choices=choices,
            system_fingerprint=self._fingerprint,
        )

    def on_event(self, event: GenerationEvent) -> list[wire.ChatCompletionChunk]:
        out = []
        if event.index not in self._started:
            self._started.add(event.index)
            first = wire.ChunkChoice(index=event.index, delta=wire.Delta(role="assistant", content=""))
            out.append(self._chunk([first]))
        if isinstance(event, TextDelta) and (event.text or event.logprobs):
            logprobs = logprobs_to_wire(event.logprobs) if event.logprobs else None
            delta = wire.Delta(content=event.text)
            out.append(self._chunk([wire.ChunkChoice(index=event.index, delta=delta, logprobs=logprobs)]))
        elif isinstance(event, ToolCallDelta):
            delta = wire.Delta(tool_calls=[call_chunk_to_wire(event)])
            out.append(self._chunk([wire.ChunkChoice(index=event.index, delta=delta)]))
        elif isinstance(event, ChoiceFinished):
            reason = finish_to_wire(event.reason)
            out.append(self._chunk([wire.ChunkChoice(index=event.index, delta=wire.Delta(), finish_reason=reason)]))
        return out

    def usage_chunk(self) -> wire.ChatCompletionChunk:
        chunk = self._chunk([])
        chunk.usage = usage_to_wire(self._run.usage())
        return chunk


Finish = Callable[[int], Awaitable[None]]


async def stream_run(run: ChatRun, finish: Finish) -> AsyncIterator[bytes]:
    """The SSE body: chunks, the usage chunk when asked for, then [DONE].

    `finish(status)` settles the run: with 200 before the last choice's final chunk leaves (so
    a response a client received in full is always on the ledger), with 499 when the client
    goes away first, or stops reading until the engine gives up on it (StreamStalled: what was
    handed to the connection is charged). An error after the stream has started cannot change the status any
    more; it is sent as an error event in OpenAI's envelope, and the stream ends without [DONE].
    """
    writer = ChunkWriter(run)
    try:
        async with aclosing(run.events()) as events:
            async for event in events:
                if isinstance(event, ChoiceFinished) and run.done:
                    await finish(200)
                for chunk in writer.on_event(event):
                    yield frame(_with_usage_field(chunk, run))
    except LoupeError as exc:
        await finish(499 if isinstance(exc, StreamStalled) else status_of(exc)[0])
        yield frame(envelope(exc))
        return
    except BaseException:  # cancelled or closed: the client went away mid-stream
        if not run.done:
            await finish(499)
        raise
    if run.request.include_usage:
        yield frame(writer.usage_chunk())
    yield DONE


def _with_usage_field(chunk: wire.ChatCompletionChunk, run: ChatRun) -> BaseModel | dict[str, object]:
    """OpenAI sends `"usage": null` on every chunk when usage was asked for, and no key otherwise."""
    if run.request.include_usage:
        return chunk
    return chunk.model_dump(exclude={"usage"})
