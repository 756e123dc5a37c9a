"""The batched engine against itself alone and against `model.generate`, token for token at
temperature 0, on the tiny checkpoints of the families it batches."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from loupe.domain import (
    ChoiceFinished,
    Detail,
    GenerationEvent,
    ModelCard,
    PreparedImage,
    PromptMessage,
    Role,
    SamplingParams,
    TextDelta,
    TextPart,
)
from loupe.engines.local import engine as engine_module
from loupe.engines.local.engine import LocalEngine, grammars_of
from loupe.engines.local.fast_processor import skips_pixels
from loupe.engines.local.generation import run_choices
from loupe.engines.local.loader import LoadedModel, load_model
from loupe.engines.local.runner import KeyedPrompt
from loupe.engines.local.vocab import Vocabulary
from tests.helpers import PHOTOS

GREEDY = SamplingParams(temperature=0.0)


def crop(name: str, box: tuple[int, int, int, int], detail: Detail = Detail.HIGH) -> PreparedImage:
    image = Image.open(PHOTOS / name).convert("RGB").crop(box)
    return PreparedImage(
        pixels=image,
        width=image.width,
        height=image.height,
        original_width=image.width,
        original_height=image.height,
        detail=detail,
        content_hash=f"{name}{box}",
    )


def conversations() -> list[list[PromptMessage]]:
    """Different lengths, with and without images, one with two images."""
    return [
        [PromptMessage(Role.USER, (TextPart("Hello there."),))],
        [PromptMessage(Role.USER, (TextPart("What is in this picture?"), crop("boats.jpg", (0, 0, 448, 448))))],
        [
            PromptMessage(Role.SYSTEM, (TextPart("You describe photos in great detail, and at length."),)),
            PromptMessage(Role.USER, (crop("bus.jpg", (40, 40, 264, 376)), TextPart("Describe the bus."))),
        ],
        [
            PromptMessage(
                Role.USER,
                (crop("zidane.jpg", (0, 0, 224, 224)), crop("boats.jpg", (100, 50, 324, 274)), TextPart("Compare.")),
            )
        ],
    ]


@pytest.fixture(scope="module", params=["qwen2-vl", "qwen3-vl", "smolvlm", "gemma3"])
def loaded(request: pytest.FixtureRequest, tiny_checkpoint: Callable[[str], Path]) -> LoadedModel:
    return load_model(str(tiny_checkpoint(request.param)), device="cpu", dtype="float32")


def card() -> ModelCard:
    return ModelCard(id="tiny", created=0, owned_by="test", family="tiny", checkpoint="tiny", context_size=32768, max_images=8)


def run(
    loaded: LoadedModel,
    jobs: list[tuple[list[PromptMessage], SamplingParams, int]],
    keep: list[KeyedPrompt] | None = None,
) -> list[list[GenerationEvent]]:
    """Run every job concurrently through a fresh engine; the events of each (and, into `keep`,
    the prepared prompts)."""

    async def scenario() -> list[list[GenerationEvent]]:
        engine = LocalEngine(card(), loaded, max_queue=64)
        assert engine.batched
        await engine.start()
        try:
            prompts = [await engine.prepare(messages) for messages, _, _ in jobs]
            if keep is not None:
                keep.extend(prompts)

            async def collect(prompt: KeyedPrompt, sampling: SamplingParams, max_tokens: int) -> list[GenerationEvent]:
                return [e async for e in engine.generate(prompt, sampling, max_tokens)]

            return list(
                await asyncio.gather(*(collect(p, s, m) for p, (_, s, m) in zip(prompts, jobs, strict=True)))
            )
        finally:
            await engine.close()

    return asyncio.run(scenario())


def reference(loaded: LoadedModel, messages: list[PromptMessage], sampling: SamplingParams, max_tokens: int) -> list[GenerationEvent]:
    """The same request through `model.generate` (the per-request path)."""
    from loupe.engines.local.prompt import build_prompt

    events: list[GenerationEvent] = []
    vocabulary = functools.cache(lambda: Vocabulary(loaded.processor.tokenizer))
    prompt = build_prompt(loaded.processor, messages)
    run_choices(loaded, vocabulary, grammars_of(loaded), prompt, sampling, max_tokens, events.append, threading.Event())
    return events


def texts(events: list[GenerationEvent]) -> dict[int, str]:
    out: dict[int, str] = {}
    for e in events:
        if isinstance(e, TextDelta):
            out[e.index] = out.get(e.index, "") + e.text
    return out


def finishes(events: list[GenerationEvent]) -> list[ChoiceFinished]:
    return [e for e in events if isinstance(e, ChoiceFinished)]


def test_concurrent_greedy_equals_alone_and_generate(loaded: LoadedModel) -> None:
    lengths = [24, 9, 31, 17]
    jobs = [(c, GREEDY, n) for c, n in zip(conversations(), lengths, strict=True)]
    together = run(loaded, jobs)
    for job, events in zip(jobs, together, strict=True):
        alone = run(loaded, [job])[0]
        assert events == alone
        assert events == reference(loaded, *job)


def test_penalties_and_stop_match_generate(loaded: LoadedModel) -> None:
    sampling = SamplingParams(temperature=0.0, repetition_penalty=1.3, frequency_penalty=0.5, presence_penalty=0.4)
    messages = conversations()[1]
    base = reference(loaded, messages, sampling, 20)
    assert run(loaded, [(messages, sampling, 20), (conversations()[0], GREEDY, 30)])[0] == base
    text = texts(base)[0]
    if len(text) >= 6:
        stop = SamplingParams(temperature=0.0, repetition_penalty=1.3, frequency_penalty=0.5, presence_penalty=0.4, stop=(text[3:5],))
        cut = run(loaded, [(messages, stop, 20)])[0]
        assert texts(cut)[0] == text[: text.index(text[3:5])]
        assert finishes(cut)[0].reason == "stop"


def test_seeded_choices_are_reproducible_and_differ(loaded: LoadedModel) -> None:
    sampling = SamplingParams(temperature=1.0, seed=7, n=3)
    jobs = [(conversations()[1], sampling, 12), (conversations()[0], SamplingParams(temperature=0.8), 12)]
    first, second = run(loaded, jobs)[0], run(loaded, jobs[:1])[0]
    assert texts(first) == texts(second)
    assert len(set(texts(first).values())) > 1
    assert sorted(f.index for f in finishes(first)) == [0, 1, 2]


def next_turn(
    loaded: LoadedModel, turn1: list[PromptMessage], follow_up: PromptMessage, tokens: tuple[int, int]
) -> tuple[list[PromptMessage], KeyedPrompt, KeyedPrompt, list[GenerationEvent]]:
    """Turn 1 and its greedy answer (`tokens[0]`), then `follow_up` on one engine: the second
    turn's messages, both prompts, and the events of the second turn (`tokens[1]`)."""

    async def scenario() -> tuple[list[PromptMessage], KeyedPrompt, KeyedPrompt, list[GenerationEvent]]:
        engine = LocalEngine(card(), loaded, max_queue=4)
        await engine.start()
        try:
            first = await engine.prepare(turn1)
            answer = texts([e async for e in engine.generate(first, GREEDY, tokens[0])])[0]
            turn2 = [*turn1, PromptMessage(Role.ASSISTANT, (TextPart(answer),)), follow_up]
            second = await engine.prepare(turn2)
            return turn2, first, second, [e async for e in engine.generate(second, GREEDY, tokens[1])]
        finally:
            await engine.close()

    return asyncio.run(scenario())


def test_next_turn_reuses_the_prefix_and_stays_exact(loaded: LoadedModel) -> None:
    image = crop("boats.jpg", (0, 0, 448, 448))
    turn1 = [PromptMessage(Role.USER, (TextPart("What is this?"), image))]
    follow_up = PromptMessage(Role.USER, (TextPart("And the colours?"),))
    turn2, first, second, events = next_turn(loaded, turn1, follow_up, (8, 12))
    assert first.cached_tokens == 0
    assert second.cached_tokens >= first.stats.prompt_tokens - 1
    # The image's embeddings were cached: where the layout allows it, no pixels were computed.
    assert first.local.pixels and second.local.pixels is not skips_pixels(loaded.processor)
    assert events == run(loaded, [(turn2, GREEDY, 12)])[0]  # a fresh engine: nothing cached
    assert events == reference(loaded, turn2, GREEDY, 12)


def test_families_the_runner_does_not_know_generate_per_request(
    tiny_checkpoint: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every tiny family is batched, so this one is served as if the runner did not know it.
    monkeypatch.setattr(engine_module, "family_for", lambda model_type: None)
    other = load_model(str(tiny_checkpoint("llava")), device="cpu", dtype="float32")
    messages = conversations()[1]

    async def scenario() -> list[GenerationEvent]:
        engine = LocalEngine(card(), other, max_queue=4)
        assert not engine.batched
        await engine.start()
        try:
            return [e async for e in engine.generate(await engine.prepare(messages), GREEDY, 6)]
        finally:
            await engine.close()

    assert asyncio.run(scenario()) == reference(other, messages, GREEDY, 6)
