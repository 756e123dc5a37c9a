"""The embedded engine: a transformers checkpoint served from one inference thread.

Families the batched runner knows (see `families`) are served with continuous batching; the
others with one `model.generate` per request, in arrival order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from functools import cache, partial
from typing import Any, TypeVar

from loupe.domain import (
    Compute,
    GenerationEvent,
    ModelCard,
    PreparedImage,
    PreparedVideo,
    PromptMessage,
    PromptStats,
    SamplingParams,
    ToolSpec,
)
from loupe.engines.local.control_text import control_text
from loupe.engines.local.core import EngineCore
from loupe.engines.local.cpu_heap import give_back_freed_memory
from loupe.engines.local.cpu_threads import OneAtATime
from loupe.engines.local.families import VIDEO, family_for
from loupe.engines.local.generation import eos_ids, run_choices
from loupe.engines.local.grammar import Grammars
from loupe.engines.local.gil import prompt_handover
from loupe.engines.local.loader import LoadedModel
from loupe.engines.local.prompt import build_prompt, count_prompt
from loupe.engines.local.runner import KeyedPrompt, ModelRunner
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.text_budget import refuse_oversized, text_budget
from loupe.engines.local.tool_events import with_tool_calls
from loupe.engines.local.vocab import Vocabulary
from loupe.engines.local.worker import InferenceWorker
from loupe.errors import InvalidRequest
from loupe.models import MODEL_TYPES
from loupe.models.tool_calls import HERMES, ToolCallFormat, format_for

MiB = 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BatchingLimits:
    """How much the batched engine holds at once."""

    max_running: int = 32  # sequences decoded together in one step
    prefill_budget: int = 2048  # prompt tokens prefilled per step (at least one request; see prefill_cost)
    vision_cache_bytes: int = 256 * MiB
    prefix_cache_bytes: int = 512 * MiB
    stream_buffer: int = 64  # tokens per choice a consumer may fall behind before its request pauses
    stall_timeout_s: float = 30.0  # how long a request stays paused before it is cancelled


class LocalEngine:
    """Prepares prompts on a preprocessing thread and generates on the inference thread.

    Preprocessing (chat template, image resizing and normalisation) runs beside generation, so
    a request's images are processed while other requests are being decoded.
    """

    def __init__(
        self,
        card: ModelCard,
        loaded: LoadedModel,
        max_queue: int,
        limits: BatchingLimits | None = None,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._card = card
        self._loaded = loaded
        control_text(loaded.processor)  # worked out at load, not on the first request
        self._budget = text_budget(loaded.processor)
        self._preprocess = OneAtATime("loupe-preprocess")  # threads that end: see cpu_threads
        self._core: EngineCore | None = None
        self._worker: InferenceWorker | None = None
        tokenizer = loaded.processor.tokenizer
        self._vocabulary = cache(lambda: Vocabulary(tokenizer))  # built on the first logprobs
        self._tool_format = format_for(MODEL_TYPES.get(loaded.checkpoint.model_type, ""))
        self._grammars = grammars_of(loaded, self._tool_format)
        family = family_for(loaded.checkpoint.model_type)
        limits = self._limits = limits or BatchingLimits()
        # On CPU, memory freed after a burst goes back to the system once the engine is idle.
        on_idle = give_back_freed_memory if loaded.device.type == "cpu" else None
        if family is None:
            self._worker = InferenceWorker(max_queue=max_queue, on_idle=on_idle)
        else:
            runner = ModelRunner(
                loaded, family, limits.vision_cache_bytes, limits.prefix_cache_bytes, self._vocabulary, self._grammars
            )
            scheduler = Scheduler(limits.max_running, limits.prefill_budget, runner.prefill_tokens)
            self._runner = runner
            self._core = EngineCore(
                runner, scheduler, max_queue, self._decode, frozenset(eos_ids(loaded)), observe_batch,
                stream_buffer=limits.stream_buffer, stall_timeout_s=limits.stall_timeout_s, on_idle=on_idle,
            )

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def cache_stats(self) -> dict[str, int]:
        """Vision-cache hits and misses, the bytes the vision and prefix caches hold (zeros where
        the model is not batched)."""
        if self._core is None:
            return dict.fromkeys(("vision_hits", "vision_misses", "vision_bytes", "prefix_entries", "prefix_bytes"), 0)
        return self._runner.stats

    @property
    def batched(self) -> bool:
        """Whether this model is served with continuous batching (else per request)."""
        return self._core is not None

    @property
    def outstanding(self) -> int:
        return self._core.outstanding if self._core is not None else self._worker.outstanding  # type: ignore[union-attr]

    @property
    def loaded(self) -> LoadedModel:
        return self._loaded

    @property
    def compute(self) -> Compute:
        precision = self._loaded.precision
        return Compute(self._loaded.device.type, precision.name, precision.reason)

    async def start(self) -> None:
        prompt_handover()  # the event loop streams tokens while the inference thread computes
        (self._core or self._worker).start()  # type: ignore[union-attr]

    async def close(self) -> None:
        await asyncio.to_thread((self._core or self._worker).stop)  # type: ignore[union-attr]
        self._preprocess.shutdown(wait=False, cancel_futures=True)

    async def prepare(self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = ()) -> KeyedPrompt:
        """The prompt's model inputs. Images and videos whose embeddings the batched engine
        holds (a later turn of a conversation, an image sent again) skip the pixel values."""
        self._budget.refuse_beyond(messages, self._card.context_size)  # from lengths, before queueing
        loop = asyncio.get_running_loop()
        keys = tuple(_media_key(p) for m in messages for p in m.content if isinstance(p, PreparedImage | PreparedVideo))
        pixels = not (keys and self._core is not None and self._runner.holds_features(keys))
        build = partial(build_prompt, self._loaded.processor, messages, tools=tuple(tools), fmt=self._tool_format)
        local = await loop.run_in_executor(self._preprocess, self._within_context, build, messages, pixels)
        return KeyedPrompt(local=local, image_keys=keys, complete=None if local.pixels else build, tools=tuple(tools))

    async def check(self, sampling: SamplingParams) -> None:
        """Compile the request's grammar, off the event loop and the inference thread; a
        constraint the grammar library cannot enforce is refused (InvalidRequest)."""
        if sampling.constraint is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._preprocess, self._grammars.check, sampling.constraint)

    async def count(self, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = ()) -> PromptStats:
        self._budget.refuse_beyond(messages, self._card.context_size)
        loop = asyncio.get_running_loop()
        count = partial(count_prompt, self._loaded.processor, messages, tuple(tools), self._tool_format)
        return await loop.run_in_executor(self._preprocess, self._within_context, count, messages)

    def _within_context(self, build: Callable[..., T], messages: Sequence[PromptMessage], *args: Any) -> T:
        """`build(*args)`, unless the long texts, counted in pieces, are already over the context."""
        refuse_oversized(self._loaded.processor, messages, self._card.context_size)
        return build(*args)

    async def generate(
        self, prompt: object, sampling: SamplingParams, max_tokens: int
    ) -> AsyncGenerator[GenerationEvent, None]:
        if not isinstance(prompt, KeyedPrompt):
            raise InvalidRequest("this prompt was prepared by another engine")
        if self._core is not None:
            ids = prompt.local.inputs["input_ids"][0].tolist()
            events = self._core.generate(ids, prompt, sampling, max_tokens)
        else:
            assert self._worker is not None
            job: Callable[[Callable[[GenerationEvent], None], threading.Event], None] = partial(
                run_choices, self._loaded, self._vocabulary, self._grammars, prompt.local, sampling, max_tokens
            )
            events = self._worker.stream(
                job, limit=self._limits.stream_buffer * sampling.n, stall_timeout_s=self._limits.stall_timeout_s
            )
        if prompt.tools:
            events = with_tool_calls(events, self._tool_format)
        async with aclosing(events) as stream:
            async for event in stream:
                yield event

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self._loaded.processor.tokenizer.decode(ids, skip_special_tokens=True))


def grammars_of(loaded: LoadedModel, fmt: ToolCallFormat = HERMES) -> Grammars:
    """The grammars of a model: masks as wide as its logits, its family's tool-call format."""
    width = int(loaded.model.config.get_text_config().vocab_size)
    return Grammars(loaded.processor.tokenizer, width, eos_ids(loaded), tool_grammar=fmt.grammar)


def _media_key(part: PreparedImage | PreparedVideo) -> str:
    """Same pixels, same geometry and processor settings: same embeddings. A video's content
    hash covers its file, sampled frames and size (service.videos)."""
    if isinstance(part, PreparedVideo):
        return f"{VIDEO}{part.content_hash}"
    settings: Any = ",".join(f"{k}={v}" for k, v in part.processor_overrides)
    return f"{part.content_hash}:{part.width}x{part.height}:{settings}"
