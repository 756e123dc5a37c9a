"""One choice streamed from a replica, retried on another while nothing has reached the client,
and several choices merged into one event stream."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from loupe.domain import ChoiceFinished, FinishReason, GenerationEvent, PromptStats, TextDelta, ToolCall, ToolCallDelta
from loupe.engines.upstream.client import CallPiece, UpstreamClient, UpstreamUsage
from loupe.models.tool_calls import new_call_id
from loupe.engines.upstream.errors import RETRYABLE, UpstreamBadResponse
from loupe.engines.upstream.replicas import Replica, ReplicaPool

__all__ = ["ChoiceStream", "UpstreamCounters", "merge"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class UpstreamCounters:
    """Counts the metrics layer reads: retried attempts and usages that disagree with Loupe's count."""

    retries: int = 0
    usage_mismatches: int = 0


@dataclass(slots=True)
class ChoiceStream:
    """One choice's request body, the attempts it may take, and what it has emitted so far.

    `sent` says whether any event of the whole response has reached the client; once one has
    (or this choice emitted anything), a failure is final: a retry would repeat text.
    `vllm_fields` are added to the body for a replica that `speaks_vllm`.
    """

    client: UpstreamClient
    pool: ReplicaPool
    body: dict[str, Any]
    vllm_fields: dict[str, Any]
    speaks_vllm: Callable[[str], bool]
    index: int
    expected: PromptStats
    max_attempts: int
    counters: UpstreamCounters
    count_text: Callable[[str], int]
    sent: Callable[[], bool]
    emitted: bool = False

    async def events(self) -> AsyncGenerator[GenerationEvent, None]:
        tried: set[str] = set()
        for attempt in range(1, self.max_attempts + 1):
            replica = self.pool.pick(frozenset(tried))
            try:
                async with aclosing(self._attempt(replica)) as events:
                    async for event in events:
                        self.emitted = True
                        yield event
                return
            except RETRYABLE as exc:
                tried.add(replica.base_url)
                if self.emitted or self.sent() or attempt == self.max_attempts:
                    raise
                self.counters.retries += 1
                _log.warning(
                    "retrying on another upstream replica",
                    extra={"upstream": replica.base_url, "error": exc.code, "choice": self.index},
                )

    async def _attempt(self, replica: Replica) -> AsyncGenerator[GenerationEvent, None]:
        with self.pool.lease(replica):
            try:
                async for event in self._read(replica):
                    yield event
            except RETRYABLE:
                self.pool.failed(replica)
                raise
            self.pool.succeeded(replica)

    async def _read(self, replica: Replica) -> AsyncIterator[GenerationEvent]:
        texts: list[str] = []
        calls = _Calls()
        finish: str | None = None
        usage: UpstreamUsage | None = None
        body = self.body | self.vllm_fields if self.speaks_vllm(replica.base_url) else self.body
        async with aclosing(self.client.stream_chat(replica.base_url, body)) as chunks:
            async for chunk in chunks:
                if chunk.text or chunk.logprobs:
                    texts.append(chunk.text)
                    yield TextDelta(index=self.index, text=chunk.text, tokens=1, logprobs=chunk.logprobs)
                for piece in chunk.calls:
                    texts.append(calls.add(piece))
                finish = chunk.finish_reason or finish
                usage = chunk.usage or usage
        if finish is None:
            raise UpstreamBadResponse("the model server's stream ended before the answer did")
        for position, call in enumerate(calls.made()):  # whole calls, once the stream has them all
            yield ToolCallDelta(index=self.index, position=position, call=call)
        if usage is not None:
            self._cross_check(replica, usage)
        completion = usage.completion_tokens if usage is not None else self.count_text("".join(texts))
        reason: FinishReason = "length" if finish == "length" else "tool_calls" if finish == "tool_calls" else "stop"
        yield ChoiceFinished(index=self.index, reason=reason, completion_tokens=completion)

    def _cross_check(self, replica: Replica, usage: UpstreamUsage) -> None:
        """Loupe bills its own count; an upstream that counts differently is logged and counted."""
        prompt_ok = usage.prompt_tokens == self.expected.prompt_tokens
        image_ok = usage.image_tokens is None or usage.image_tokens == self.expected.image_tokens
        if prompt_ok and image_ok:
            return
        self.counters.usage_mismatches += 1
        _log.warning(
            "upstream usage differs from Loupe's count",
            extra={
                "upstream": replica.base_url,
                "loupe_prompt_tokens": self.expected.prompt_tokens,
                "loupe_image_tokens": self.expected.image_tokens,
                "upstream_prompt_tokens": usage.prompt_tokens,
                "upstream_image_tokens": usage.image_tokens,
            },
        )


@dataclass(slots=True)
class _Calls:
    """Tool calls put together from their streamed pieces, by index."""

    parts: dict[int, list[str]] = field(default_factory=dict)

    def add(self, piece: CallPiece) -> str:
        """Take a piece; return its text (name and arguments), for counting without usage."""
        parts = self.parts.setdefault(piece.index, ["", "", ""])
        parts[0] = parts[0] or piece.id
        parts[1] += piece.name
        parts[2] += piece.arguments
        return piece.name + piece.arguments

    def made(self) -> list[ToolCall]:
        return [
            ToolCall(id=call_id or new_call_id(), name=name, arguments=arguments)
            for call_id, name, arguments in (self.parts[i] for i in sorted(self.parts))
        ]


async def merge(streams: Sequence[AsyncGenerator[GenerationEvent, None]]) -> AsyncGenerator[GenerationEvent, None]:
    """Events of several streams as they come; the first failure ends all of them.

    Each stream runs in its own task; closing this iterator cancels the tasks, which closes
    their streams (and so their HTTP responses) before it returns.
    """
    queue: asyncio.Queue[GenerationEvent | BaseException | None] = asyncio.Queue()

    async def pump(stream: AsyncGenerator[GenerationEvent, None]) -> None:
        try:
            async with aclosing(stream) as events:
                async for event in events:
                    queue.put_nowait(event)
        except Exception as exc:  # handed to the consumer, which raises it
            queue.put_nowait(exc)
        else:
            queue.put_nowait(None)

    tasks = [asyncio.create_task(pump(s)) for s in streams]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            if item is None:
                running -= 1
                continue
            yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
