"""The engine's caches: byte-bounded LRU, prefix matching, the batch cache's layer, image features."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from loupe.domain import GenerationEvent, PromptMessage, Role, TextPart
from loupe.engines.local.batch_cache import RoomyLayer
from loupe.engines.local.engine import LocalEngine
from loupe.engines.local.families import Features, Qwen3VL
from loupe.engines.local.loader import load_model
from loupe.engines.local.prefix_cache import PrefixCache
from loupe.engines.local.runner import KeyedPrompt
from tests.engines.local.test_batching import GREEDY, card, crop, reference


def test_prefix_cache_finds_the_longest_common_prefix() -> None:
    cache: PrefixCache[str] = PrefixCache(100)
    cache.store([1, 2, 3], "short", 1)
    cache.store([1, 2, 3, 4, 5], "long", 1)
    assert cache.lookup([1, 2, 3, 4, 9]) == ("long", 4)
    assert cache.lookup([1, 2, 7]) in (("short", 2), ("long", 2))
    assert cache.lookup([8]) == (None, 0)


def test_image_placeholders_match_by_image_not_by_id() -> None:
    cache: PrefixCache[str] = PrefixCache(100)
    cache.store([1, "cat.jpg", "cat.jpg", 2], "cat", 1)
    assert cache.lookup([1, "dog.jpg", "dog.jpg", 2]) == ("cat", 1)
    assert cache.lookup([1, "cat.jpg", "cat.jpg", 2, 3]) == ("cat", 4)


def test_batch_cache_layer_left_pads_rows_and_grows_like_concatenation() -> None:
    short, long = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    layer = RoomyLayer.of_rows([(short, short + 1), (long, long + 1)], width=5)
    expected = torch.cat([F.pad(short, (0, 0, 2, 0)), long])
    for _ in range(100):  # past the margin: the buffer is reallocated on the way
        step = torch.randn(2, 2, 1, 4)
        keys, values = layer.update(step, step + 1)
        expected = torch.cat([expected, step], dim=-2)
    assert torch.equal(keys, expected)
    assert torch.equal(values[:, :, 2:], expected[:, :, 2:] + 1) and not values[0, :, :2].any()
    assert layer.get_seq_length() == 105


def test_image_features_join_with_their_deepstack_rows_and_count_them() -> None:
    a = Features(torch.randn(3, 4), (torch.randn(3, 4), torch.randn(3, 4)))
    b = Features(torch.randn(2, 4), (torch.randn(2, 4), torch.randn(2, 4)))
    joined = Features.joined([a, b], skip=2)  # the first two placeholders' states are reused
    assert torch.equal(joined.rows, torch.cat([a.rows[2:], b.rows]))
    for layer, (mine, theirs) in enumerate(zip(a.deepstack, b.deepstack, strict=True)):
        assert torch.equal(joined.deepstack[layer], torch.cat([mine[2:], theirs]))
    assert a.nbytes == 3 * a.rows.nbytes


def test_the_vision_cache_keeps_qwen3_vl_deepstack_rows(tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint("qwen3-vl")), device="cpu", dtype="float32")
    image = crop("boats.jpg", (0, 0, 448, 448))
    asks = [[PromptMessage(Role.USER, (TextPart(text), image))] for text in ("What is this?", "Describe it.")]

    async def scenario() -> tuple[dict[str, torch.Tensor], tuple[str, ...], dict[str, int]]:
        engine = LocalEngine(card(), loaded, max_queue=4)
        await engine.start()
        try:
            prompts = [await engine.prepare(messages) for messages in asks]
            inputs, keys = dict(prompts[0].local.inputs), prompts[0].image_keys
            for prompt in prompts:  # the prompts differ before the image: no prefix covers it
                assert len([e async for e in engine.generate(prompt, GREEDY, 2)]) > 1
            return inputs, keys, engine.cache_stats
        finally:
            await engine.close()

    inputs, keys, stats = asyncio.run(scenario())
    assert (stats["vision_misses"], stats["vision_hits"]) == (1, 1)
    family = Qwen3VL()
    (group,) = family.groups(loaded.model, inputs, keys)
    with torch.inference_mode():
        features = family.encode(loaded.model, group)
    assert len(features.deepstack) == len(loaded.model.config.vision_config.deepstack_visual_indexes)
    assert stats["vision_bytes"] == features.nbytes > features.rows.nbytes


def test_a_prompt_prepared_without_pixels_gets_them_when_its_features_were_evicted(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    loaded = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")
    image = crop("boats.jpg", (0, 0, 448, 448))
    first_ask = [PromptMessage(Role.USER, (TextPart("What is this?"), image))]
    other_ask = [PromptMessage(Role.USER, (TextPart("Describe it."), image))]  # no common prefix with the first

    async def scenario() -> tuple[KeyedPrompt, bool, list[GenerationEvent]]:
        engine = LocalEngine(card(), loaded, max_queue=4)
        await engine.start()
        try:
            first = await engine.prepare(first_ask)
            assert len([e async for e in engine.generate(first, GREEDY, 2)]) > 1
            prompt = await engine.prepare(other_ask)  # the features are cached: prepared without pixels
            lean = prompt.local.pixels
            engine._runner._vision.pop(prompt.image_keys[0])  # evicted before its prefill
            return prompt, lean, [e async for e in engine.generate(prompt, GREEDY, 8)]
        finally:
            await engine.close()

    prompt, lean, events = asyncio.run(scenario())
    assert lean is False
    assert events == reference(loaded, other_ask, GREEDY, 8)  # its pixel values were computed for the prefill
    # and let go after it: a request decoding for long holds its token ids only
    assert set(prompt.local.inputs) == {"input_ids"} and prompt.complete is None
