"""A stream whose consumer falls behind is paused and resumed without changing a token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from loupe.domain import GenerationEvent
from loupe.engines.local.engine import BatchingLimits, LocalEngine
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.runner import KeyedPrompt
from tests.engines.local.test_batching import GREEDY, card, conversations, run


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")


def test_a_slow_reader_is_paused_and_resumed_and_every_stream_stays_exact(loaded: LoadedModel) -> None:
    jobs = [(conversations()[1], GREEDY, 40), (conversations()[2], GREEDY, 40), (conversations()[0], GREEDY, 40)]

    async def scenario() -> list[list[GenerationEvent]]:
        engine = LocalEngine(card(), loaded, max_queue=8, limits=BatchingLimits(stream_buffer=2))
        await engine.start()
        try:
            prompts = [await engine.prepare(messages) for messages, _, _ in jobs]

            async def collect(prompt: KeyedPrompt, pause_s: float) -> list[GenerationEvent]:
                events = []
                async for event in engine.generate(prompt, GREEDY, 40):
                    events.append(event)
                    await asyncio.sleep(pause_s)  # the slow one falls 2 tokens behind: paused
                return events

            return list(await asyncio.gather(collect(prompts[0], 0.05), collect(prompts[1], 0), collect(prompts[2], 0)))
        finally:
            await engine.close()

    together = asyncio.run(scenario())
    for job, events in zip(jobs, together, strict=True):
        assert events == run(loaded, [job])[0]
