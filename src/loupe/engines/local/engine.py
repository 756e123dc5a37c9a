"""The embedded engine: a transformers checkpoint served from one inference thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from functools import partial

from loupe.domain import GenerationEvent, ModelCard, PromptMessage, PromptStats, SamplingParams
from loupe.engines.local.generation import run_choices
from loupe.engines.local.loader import LoadedModel
from loupe.engines.local.prompt import LocalPrompt, build_prompt, count_prompt
from loupe.engines.local.worker import InferenceWorker
from loupe.errors import InvalidRequest


class LocalEngine:
    """Prepares prompts on a preprocessing thread and generates on the inference thread.

    Preprocessing (chat template, image resizing and normalisation) runs beside generation, so
    a request's images are processed while another request is being decoded.
    """

    def __init__(self, card: ModelCard, loaded: LoadedModel, max_queue: int) -> None:
        self._card = card
        self._loaded = loaded
        self._worker = InferenceWorker(max_queue=max_queue)
        self._preprocess = ThreadPoolExecutor(max_workers=1, thread_name_prefix="loupe-preprocess")

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def outstanding(self) -> int:
        return self._worker.outstanding

    @property
    def loaded(self) -> LoadedModel:
        return self._loaded

    async def start(self) -> None:
        self._worker.start()

    async def close(self) -> None:
        await asyncio.to_thread(self._worker.stop)
        self._preprocess.shutdown(wait=False, cancel_futures=True)

    async def prepare(self, messages: Sequence[PromptMessage]) -> LocalPrompt:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._preprocess, build_prompt, self._loaded.processor, messages
        )

    async def count(self, messages: Sequence[PromptMessage]) -> PromptStats:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._preprocess, count_prompt, self._loaded.processor, messages)

    async def generate(
        self, prompt: object, sampling: SamplingParams, max_tokens: int
    ) -> AsyncIterator[GenerationEvent]:
        if not isinstance(prompt, LocalPrompt):
            raise InvalidRequest("this prompt was prepared by another engine")
        job: Callable[[Callable[[GenerationEvent], None], threading.Event], None] = partial(
            run_choices, self._loaded, prompt, sampling, max_tokens
        )
        async with aclosing(self._worker.stream(job)) as events:
            async for event in events:
                yield event
