"""Server-sent events for streamed completions: framing written once, payloads from the schemas."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing

from pydantic import BaseModel
from pydantic_core import to_json

from loupe.api import schemas as wire
from loupe.api.convert import call_chunk_to_wire, finish_to_wire, logprobs_to_wire, usage_to_wire
from loupe.api.errors import envelope, status_of
from loupe.domain import ChoiceFinished, GenerationEvent, TextDelta, ToolCallDelta
from loupe.errors import LoupeError, StreamStalled
from loupe.service.chat import ChatRun

DONE = b"data: [DONE]\n\n"
# Stands for a text delta's content in a chunk serialised once per choice (see `ChunkWriter.frames`).
_CONTENT = "\x00loupe content\x00"


def frame(payload: bytes | BaseModel | dict[str, object]) -> bytes:
    if isinstance(payload, BaseModel):
        payload = payload.model_dump_json().encode()
    elif isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":")).encode()
    return b"data: " + payload + b"\n\n"


class ChunkWriter:
    """Turns one run's generation events into `chat.completion.chunk` objects."""

    def __init__(self, run: ChatRun) -> None:
        self._run = run
        self._started: set[int] = set()
        # One fingerprint for the whole stream, read once (an upstream card is rebuilt per read).
        self._fingerprint = run.engine.card.fingerprint
        self._text_frames: dict[int, tuple[bytes, bytes] | tuple[()]] = {}

    def _chunk(self, choices: list[wire.ChunkChoice]) -> wire.ChatCompletionChunk:
        return wire.ChatCompletionChunk(
            id=self._run.id,
            created=self._run.created,
            model=self._run.request.model,
            choices=choices,
            system_fingerprint=self._fingerprint,
        )

    def frames(self, event: GenerationEvent) -> list[bytes]:
        """The event's chunks as SSE frames. A choice's text deltas, the bulk of a stream, differ
        only in their text: each is its choice's frame, serialised once, around its text."""
        if isinstance(event, TextDelta) and event.text and not event.logprobs and event.index in self._started:
            head_tail = self._text_frames.get(event.index)
            if head_tail is None:
                head_tail = self._text_frames[event.index] = self._text_frame(event.index)
            if head_tail:
                return [head_tail[0] + to_json(event.text) + head_tail[1]]
        return [frame(_with_usage_field(chunk, self._run)) for chunk in self.on_event(event)]

    def _text_frame(self, index: int) -> tuple[bytes, bytes] | tuple[()]:
        choice = wire.ChunkChoice(index=index, delta=wire.Delta(content=_CONTENT))
        whole = frame(_with_usage_field(self._chunk([choice]), self._run))
        parts = whole.split(to_json(_CONTENT))
        return (parts[0], parts[1]) if len(parts) == 2 else ()  # a model id holding the mark: never split

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
                for data in writer.frames(event):
                    yield data
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


def _with_usage_field(chunk: wire.ChatCompletionChunk, run: ChatRun) -> bytes:
    """OpenAI sends `"usage": null` on every chunk when usage was asked for, and no key otherwise."""
    return chunk.model_dump_json(exclude=None if run.request.include_usage else {"usage"}).encode()
