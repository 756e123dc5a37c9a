"""A prefill's cost in prompt tokens: image placeholders weighed by measured vision work."""

from __future__ import annotations

import functools

from collections.abc import Callable
from pathlib import Path

import pytest

from loupe.domain import PromptMessage, Role, TextPart
from loupe.engines.local.families import Qwen2VL
from loupe.engines.local.loader import load_model
from loupe.engines.local.prefill_cost import PrefillCost
from loupe.engines.local.prompt import build_prompt
from loupe.engines.local.runner import KeyedPrompt, ModelRunner
from loupe.engines.local.sequence import Request
from loupe.engines.local.vocab import Vocabulary
from tests.engines.local.test_batching import GREEDY, crop


def test_until_both_sides_are_measured_a_placeholder_is_one_token() -> None:
    cost = PrefillCost()
    assert cost.image_weight == 0 and cost.tokens(100, 64) == 100
    cost.observe_vision(1.0, 64)
    assert cost.tokens(100, 64) == 100  # no text timing yet


def test_placeholders_weigh_what_the_tower_costs_per_text_token() -> None:
    cost = PrefillCost()
    cost.observe_text(0.1, 100)  # 1 ms a token
    cost.observe_vision(0.64, 64)  # 10 ms a placeholder
    assert cost.image_weight == pytest.approx(10)
    assert cost.tokens(84, 64) == 84 + 640
    assert cost.tokens(84, 0) == 84  # its images are cached: the text model's work only


def test_the_weight_follows_new_measurements_smoothly() -> None:
    cost = PrefillCost()
    cost.observe_text(0.1, 100)
    cost.observe_vision(0.64, 64)
    cost.observe_vision(0.0, 64)
    assert 0 < cost.image_weight < 10
    for _ in range(40):
        cost.observe_vision(0.0, 64)
    assert cost.image_weight == pytest.approx(0, abs=0.01)


def test_empty_observations_change_nothing() -> None:
    cost = PrefillCost()
    cost.observe_text(5.0, 0)
    cost.observe_vision(5.0, 0)
    assert cost.image_weight == 0


def test_the_runner_weighs_images_it_has_not_encoded(tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")
    vocabulary = functools.cache(lambda: Vocabulary(loaded.processor.tokenizer))
    runner = ModelRunner(loaded, Qwen2VL(), 1 << 24, 1 << 24, vocabulary)

    def request(name: str) -> Request:
        image = crop(name, (0, 0, 224, 224))
        local = build_prompt(loaded.processor, [PromptMessage(Role.USER, (image, TextPart("What is this?")))])
        prompt = KeyedPrompt(local, (f"{name}-key",))
        ids = local.inputs["input_ids"][0].tolist()
        return Request.create(ids, GREEDY, 2, {0}, lambda ids: "", lambda event: None, prompt)

    first, again, other = request("boats.jpg"), request("boats.jpg"), request("bus.jpg")
    assert runner.prefill_tokens(first) == first.prompt_length  # nothing measured yet
    runner.prefill([first])
    weight = runner._cost.image_weight
    assert weight > 0
    images = other.payload.stats.image_tokens  # type: ignore[attr-defined]
    assert images == 64 and runner.prefill_tokens(other) == other.prompt_length + round(images * weight)
    assert runner.prefill_tokens(again) == again.prompt_length  # its features are cached
