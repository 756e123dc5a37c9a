"""The embedded engine: a transformers checkpoint served from one inference thread.

Families the batched runner knows (see `families`) are served with continuous batching; the
others with one `model.generate` per request, in arrival order.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

from loupe.domain import Compute, GenerationEvent, ModelCard, PreparedImage, PromptMessage, PromptStats, SamplingParams
from loupe.engines.local.core import EngineCore
from loupe.engines.local.families import family_for
from loupe.engines.local.generation import eos_ids, run_choices
from loupe.engines.local.gil import prompt_handover
from loupe.engines.local.loader import LoadedModel
from loupe.engines.local.prompt import build_prompt, count_prompt
from loupe.engines.local.runner import KeyedPrompt, ModelRunner
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.worker import InferenceWorker
from loupe.errors import InvalidRequest

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BatchingLimits:
    """How much the batched engine holds at once."""

    max_running: int = 32  # sequences decoded together in one step
    prefill_budget: int = 2048  # prompt tokens prefilled per step (at least one request; see prefill_cost)
    vision_cache_bytes: int = 256 * MiB
    prefix_cache_bytes: int = 512 * MiB


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
        self._preprocess = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loupe-preprocess")
        self._core: EngineCore | None = None
        self._worker: InferenceWorker | None = None
        family = family_for(loaded.checkpoint.model_type)
        if family is None:
            self._worker = InferenceWorker(max_queue=max_queue)
        else:
            limits = limits or BatchingLimits()
            runner = ModelRunner(loaded, family, limits.vision_cache_bytes, limits.prefix_cache_bytes)
            scheduler = Scheduler(limits.max_running, limits.prefill_budget, runner.prefill_tokens)
            self._runner = runner
            self._core = EngineCore(
                runner, scheduler, max_queue, self._decode, frozenset(eos_ids(loaded)), observe_batch
            )

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def cache_stats(self) -> dict[str, int]:
        """Vision-cache hits and misses (zeros where the model is not batched)."""
        return self._runner.stats if self._core is not None else {"vision_hits": 0, "vision_misses": 0}

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

    async def prepare(self, messages: Sequence[PromptMessage]) -> KeyedPrompt:
        """The prompt's model inputs. Images whose embeddings the batched engine holds (a later
        turn of a conversation, an image sent again) skip the resize and pixel values."""
        loop = asyncio.get_running_loop()
        keys = tuple(_image_key(p) for p in _images(messages))
        pixels = not (keys and self._core is not None and self._runner.holds_features(keys))
        build = partial(build_prompt, self._loaded.processor, messages)
        local = await loop.run_in_executor(self._preprocess, build, pixels)
        return KeyedPrompt(local=local, image_keys=keys, complete=None if local.pixels else build)

    async def count(self, messages: Sequence[PromptMessage]) -> PromptStats:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._preprocess, count_prompt, self._loaded.processor, messages)

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
                run_choices, self._loaded, prompt.local, sampling, max_tokens
            )
            events = self._worker.stream(job)
        async with aclosing(events) as stream:
            async for event in stream:
                yield event

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self._loaded.processor.tokenizer.decode(ids, skip_special_tokens=True))


def _images(messages: Sequence[PromptMessage]) -> list[PreparedImage]:
    return [p for m in messages for p in m.content if isinstance(p, PreparedImage)]


def _image_key(image: PreparedImage) -> str:
    """Same pixels, same geometry and processor settings: same embeddings."""
    settings: Any = ",".join(f"{k}={v}" for k, v in image.processor_overrides)
    return f"{image.content_hash}:{image.width}x{image.height}:{settings}"
