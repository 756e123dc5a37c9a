"""The chat use case: intake the images and videos, prepare the prompt, fit the budget, run the engine."""

from __future__ import annotations

import secrets
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Protocol

from loupe.domain import (
    ChatRequest,
    ChoiceFinished,
    Estimate,
    FinishReason,
    GenerationEvent,
    ImageRef,
    ModelCard,
    PlannedImage,
    PlannedVideo,
    PreparedImage,
    PreparedVideo,
    PromptMessage,
    PromptStats,
    TextDelta,
    TextPart,
    TokenLogprob,
    ToolCall,
    ToolCallDelta,
    Usage,
    VideoRef,
)
from loupe.engines.protocol import Engine, PreparedPrompt
from loupe.errors import ContextLengthExceeded, InvalidRequest, ModelNotFound, TooManyImages
from loupe.service.budget import Lease, MemoryBudget
from loupe.service.videos import VideoService


class ImagePipeline(Protocol):
    """Turns the image references of a request into images sized for the detail applied."""

    async def prepare(
        self, card: ModelCard, refs: Sequence[ImageRef], admit: Callable[[int], Awaitable[None]] | None = None
    ) -> list[PreparedImage]:
        """Fetch or decode, validate and size every image; raises ImageError subclasses.
        `admit(cost)`, when given, is awaited with the images' estimated bytes before decoding."""
        ...

    async def plan(self, card: ModelCard, refs: Sequence[ImageRef]) -> list[PlannedImage]:
        """Plan every image from its header alone (no decode); raises ImageError subclasses."""
        ...

    async def aclose(self) -> None:
        """Release connections (the URL fetcher's pool)."""
        ...


class VideoPipeline(Protocol):
    """Turns the video references of a request into planned or sampled videos (service.videos)."""

    def check(self, card: ModelCard, refs: Sequence[VideoRef], *, images: int = 0) -> None:
        """Refuse at once what the model cannot take; raises VideoNotSupported and the like."""
        ...

    async def plan(self, card: ModelCard, refs: Sequence[VideoRef]) -> list[PlannedVideo]:
        """Plan every video from its container's header (no decode); raises VideoError subclasses."""
        ...

    async def prepare(
        self, card: ModelCard, refs: Sequence[VideoRef], admit: Callable[[int], Awaitable[None]] | None = None
    ) -> list[PreparedVideo]:
        """Plan, then decode each video's planned frames at their planned size, once `admit`
        (when given) has let the frames' bytes in."""
        ...


def fit_max_tokens(stats: PromptStats, requested: int | None, context_size: int) -> int:
    """The completion budget: what was asked, lowered to what the context leaves."""
    room = context_size - stats.prompt_tokens
    if room <= 0:
        media = f"{stats.image_tokens} of them image tokens"
        if stats.video_tokens:
            media += f", {stats.video_tokens} video tokens"
        raise ContextLengthExceeded(
            f"the prompt is {stats.prompt_tokens} tokens ({media}) "
            f"and leaves no room in the model's context of {context_size} tokens; "
            "send fewer or smaller images, use detail 'low', sample fewer video frames, or shorten the conversation",
            param="messages",
        )
    return room if requested is None else min(requested, room)


@dataclass(slots=True, weakref_slot=True)
class ChatRun:
    """One admitted request: its prompt is prepared, generation has not started.

    `images` is its lease on the image budget, given back once its prompt is prefilled (its
    first event), when it ends, or when the run is dropped unstarted.
    """

    id: str
    created: int
    request: ChatRequest
    engine: Engine
    prompt: PreparedPrompt
    max_tokens: int
    streamed: dict[int, int] = field(default_factory=dict)
    finished: dict[int, int] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    first_text_at: float | None = None
    images: Lease | None = None

    def __post_init__(self) -> None:
        if self.images is not None:
            weakref.finalize(self, self.images.release)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def time_to_first_token(self) -> float | None:
        return None if self.first_text_at is None else self.first_text_at - self.started_at

    @property
    def stats(self) -> PromptStats:
        return self.prompt.stats

    @property
    def done(self) -> bool:
        return len(self.finished) == self.request.sampling.n

    @property
    def completion_tokens(self) -> int:
        """Tokens generated so far: exact for finished choices, streamed ones for the others."""
        return sum(self.finished.get(i, self.streamed.get(i, 0)) for i in range(self.request.sampling.n))

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.stats.prompt_tokens,
            completion_tokens=self.completion_tokens,
            image_tokens=self.stats.image_tokens,
            cached_tokens=self.prompt.cached_tokens,
            video_tokens=self.stats.video_tokens,
        )

    async def events(self) -> AsyncGenerator[GenerationEvent, None]:
        """The engine's events, tallied as they pass so usage is known at any moment."""
        stream = self.engine.generate(self.prompt, self.request.sampling, self.max_tokens)
        async with aclosing(stream) as events:
            async for event in events:
                if self.images is not None:  # prefilled: its pixel values are spent
                    self.images.release()
                if isinstance(event, ChoiceFinished):
                    self.finished[event.index] = event.completion_tokens
                else:
                    self.streamed[event.index] = self.streamed.get(event.index, 0) + event.tokens
                    shown = event.text if isinstance(event, TextDelta) else event.name or event.arguments
                    if shown and self.first_text_at is None:
                        self.first_text_at = time.monotonic()
                yield event


@dataclass(frozen=True, slots=True)
class Completion:
    texts: tuple[str, ...]
    finish_reasons: tuple[FinishReason, ...]
    usage: Usage
    logprobs: tuple[tuple[TokenLogprob, ...], ...] = ()  # per choice, when asked for
    tool_calls: tuple[tuple[ToolCall, ...], ...] = ()  # per choice


class ChatService:
    """Entry point for chat completions, independent of the transport."""

    def __init__(
        self,
        engines: Mapping[str, Engine],
        images: ImagePipeline,
        image_budget: MemoryBudget | None = None,
        videos: VideoPipeline | None = None,
    ) -> None:
        self._engines = dict(engines)
        self._images = images
        self._videos = videos if videos is not None else VideoService({})  # none: every model refuses video
        self._image_budget = image_budget or MemoryBudget(0)

    def models(self) -> list[ModelCard]:
        return [engine.card for engine in self._engines.values()]

    async def aclose(self) -> None:
        """Release the image pipeline's connections."""
        await self._images.aclose()

    def queue_depths(self) -> dict[str, int]:
        """Requests queued or running, per model."""
        return {model_id: engine.outstanding for model_id, engine in self._engines.items()}

    def model(self, model_id: str) -> ModelCard:
        return self._engine(model_id).card

    async def estimate(self, request: ChatRequest) -> Estimate:
        """Exact prompt tokens and the cost range, from image and video headers, without
        decoding a frame or running the model."""
        engine = self._engine(request.model)
        image_refs, video_refs = self._media_refs(engine, request)
        planned = await self._images.plan(engine.card, image_refs)
        videos = await self._videos.plan(engine.card, video_refs)
        stats = await engine.count(_with_media(request, planned, videos), request.tools)
        max_tokens = fit_max_tokens(stats, request.sampling.max_tokens, engine.card.context_size)
        return Estimate(
            model=engine.card.id,
            prompt_tokens=stats.prompt_tokens,
            image_tokens=stats.image_tokens,
            images=tuple(planned),
            max_completion_tokens=max_tokens * request.sampling.n,
            prices=engine.card.prices,
            video_tokens=stats.video_tokens,
            videos=tuple(videos),
        )

    async def start(self, request: ChatRequest) -> ChatRun:
        """Validate the request against the model and prepare its prompt; nothing is generated yet."""
        begun = time.monotonic()
        engine = self._engine(request.model)
        _check_logit_bias(request, engine.card)
        await engine.check(request.sampling)
        image_refs, video_refs = self._media_refs(engine, request)
        lease = self._image_budget.lease()
        try:
            images = await self._images.prepare(engine.card, image_refs, lease.take)
            videos = await self._videos.prepare(engine.card, video_refs, lease.take)
            prompt = await engine.prepare(_with_media(request, images, videos), request.tools)
            max_tokens = fit_max_tokens(prompt.stats, request.sampling.max_tokens, engine.card.context_size)
        except BaseException:
            lease.release()
            raise
        return ChatRun(
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            request=request,
            engine=engine,
            prompt=prompt,
            max_tokens=max_tokens,
            started_at=begun,
            images=lease,
        )

    async def complete(self, run: ChatRun) -> Completion:
        """Run to the end and gather every choice."""
        n = run.request.sampling.n
        texts: list[list[str]] = [[] for _ in range(n)]
        logprobs: list[list[TokenLogprob]] = [[] for _ in range(n)]
        calls: list[list[ToolCallDelta]] = [[] for _ in range(n)]
        reasons: list[FinishReason] = ["stop"] * n
        async with aclosing(run.events()) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    texts[event.index].append(event.text)
                    logprobs[event.index].extend(event.logprobs)
                elif isinstance(event, ToolCallDelta):
                    calls[event.index].append(event)
                else:
                    reasons[event.index] = event.reason
        return Completion(
            texts=tuple("".join(t) for t in texts),
            finish_reasons=tuple(reasons),
            usage=run.usage(),
            logprobs=tuple(tuple(entries) for entries in logprobs),
            tool_calls=tuple(_assembled(pieces) for pieces in calls),
        )

    def _media_refs(self, engine: Engine, request: ChatRequest) -> tuple[tuple[ImageRef, ...], tuple[VideoRef, ...]]:
        """The request's images and videos, refused at once where the model cannot take them."""
        images, videos = request.images(), request.videos()
        if len(images) > engine.card.max_images:
            raise TooManyImages(
                f"{len(images)} images were sent; {engine.card.id} accepts at most {engine.card.max_images}",
                param="messages",
            )
        self._videos.check(engine.card, videos, images=len(images))
        return images, videos

    def _engine(self, model_id: str) -> Engine:
        engine = self._engines.get(model_id)
        if engine is None:
            served = ", ".join(sorted(self._engines)) or "none"
            raise ModelNotFound(f"model {model_id!r} is not served here; served models: {served}", param="model")
        return engine


def _assembled(pieces: Sequence[ToolCallDelta]) -> tuple[ToolCall, ...]:
    """A choice's calls from their pieces: each call's id and name from its first piece, its
    arguments the pieces' text joined, as a client joins a stream's."""
    first: dict[int, ToolCallDelta] = {}
    arguments: dict[int, list[str]] = {}
    for piece in pieces:
        first.setdefault(piece.position, piece)
        arguments.setdefault(piece.position, []).append(piece.arguments)
    return tuple(
        ToolCall(first[at].id or "", first[at].name or "", "".join(arguments[at])) for at in sorted(first)
    )


def _check_logit_bias(request: ChatRequest, card: ModelCard) -> None:
    for token, _ in request.sampling.logit_bias:
        if card.vocab_size and token >= card.vocab_size:
            raise InvalidRequest(
                f"logit_bias names token id {token}, which is not in {card.id}'s vocabulary "
                f"(ids 0 to {card.vocab_size - 1})",
                param=f"logit_bias.{token}",
            )


def _with_media(
    request: ChatRequest,
    images: Sequence[PreparedImage] | Sequence[PlannedImage],
    videos: Sequence[PreparedVideo] | Sequence[PlannedVideo],
) -> list[PromptMessage]:
    """The request's messages with each image and video reference replaced, in order, by its
    image or video."""
    image: Iterator[PreparedImage | PlannedImage] = iter(images)
    video: Iterator[PreparedVideo | PlannedVideo] = iter(videos)
    return [
        PromptMessage(
            role=m.role,
            content=tuple(
                p if isinstance(p, TextPart) else next(video) if isinstance(p, VideoRef) else next(image)
                for p in m.content
            ),
            tool_calls=m.tool_calls,
            tool_call_id=m.tool_call_id,
        )
        for m in request.messages
    ]
