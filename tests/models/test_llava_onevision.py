"""LLaVA-OneVision plans against the real LlavaOnevisionProcessor (PIL backend, tiny checkpoint's
tokenizer), and the detail rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from loupe.domain import Detail
from loupe.engines.local.processor import load_processor
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models import config as cfg
from loupe.models.llava_onevision import (
    ONEVISION_PUBLISHED,
    PUBLISHED_PINPOINTS,
    OnevisionRules,
    OnevisionSettings,
)
from tests.models.support import FAST, SIDES, changed_copy, image_token_count, sample_sizes

RULES = OnevisionRules()
BUDGET = 4096

EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (384, 384), (385, 384), (384, 385), (10000, 20), (20, 10000),
    (5000, 1), (1, 5000), (1920, 1080), (1080, 1920), (2304, 2304), (4096, 4096), (570, 380),
    (503, 316), (316, 503),
]  # fmt: skip

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (preprocessor_config changes, processor_config changes)
    "published": ({}, {}),
    "anyres_max_4, default strategy": (
        {},
        {"vision_aspect_ratio": "anyres_max_4", "vision_feature_select_strategy": "default"},
    ),
    "2 x 2 grid": ({"image_grid_pinpoints": [[384, 384], [384, 768], [768, 384], [768, 768]]}, {}),
}


@pytest.fixture(scope="module")
def variant(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Any, OnevisionSettings]]:
    """The processor and the counter's settings of a copy of the tiny checkpoint whose
    processor files are changed as the variant says."""

    def get(name: str) -> tuple[Any, OnevisionSettings]:
        parent = tmp_path_factory.mktemp("onevision")
        copy, files = changed_copy(tiny_checkpoint("llava-onevision"), parent, VARIANTS[name])
        return load_processor(str(copy)), RULES.settings(cfg.merged(*files))

    return get


@pytest.mark.parametrize("name", VARIANTS)
def test_plans_equal_the_processor_for_every_detail(
    name: str, variant: Callable[[str], tuple[Any, OnevisionSettings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=300):
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, settings_, BUDGET)
            # What Loupe hands over: the original, or the planned size when Loupe resizes.
            size = (plan.resized_height, plan.resized_width) if plan.loupe_resizes else (height, width)
            counted = processor._get_num_multimodal_tokens([size])["num_image_tokens"][0]
            if plan.tokens != counted or plan.processor_overrides:
                mismatches.append((width, height, detail))
    assert mismatches == []


@pytest.mark.parametrize("name", VARIANTS)
def test_the_expanded_text_agrees(
    name: str, variant: Callable[[str], tuple[Any, OnevisionSettings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES[:12] + sample_sizes(seed=100 + len(name), count=12):
        plan = RULES.plan(width, height, Detail.HIGH, settings_, BUDGET)
        if plan.tokens != image_token_count(processor, width, height):
            mismatches.append((width, height))
    assert mismatches == []


def test_settings_of_the_tiny_checkpoint_are_the_published_ones(
    variant: Callable[[str], tuple[Any, OnevisionSettings]],
) -> None:
    _, settings_ = variant("published")
    assert settings_ == ONEVISION_PUBLISHED


def test_several_images_in_a_prompt_get_the_base_alone(
    variant: Callable[[str], tuple[Any, OnevisionSettings]],
) -> None:
    # The processor's rule, not Loupe's: a plan counts an image alone in its prompt.
    processor, _ = variant("published")
    images = [Image.new("RGB", (1920, 1080)), Image.new("RGB", (570, 380))]
    out = processor(text=["<image><image>"], images=[images], **FAST)
    assert list(out["input_ids"][0]).count(processor.image_token_id) == 2 * (729 + 1)


WORKED_EXAMPLES = [
    # width, height, detail, handed-over width, height, tokens, Loupe resizes
    (570, 380, Detail.HIGH, 570, 380, 1836, False),
    (570, 380, Detail.LOW, 384, 256, 1261, True),
    (570, 380, Detail.AUTO, 570, 380, 1836, False),
    (1920, 1080, None, 1920, 1080, 7269, False),
    (1920, 1080, Detail.AUTO, 768, 432, 2379, True),
    (100, 100, Detail.LOW, 100, 100, 1485, False),
]


@pytest.mark.parametrize(("width", "height", "detail", "rw", "rh", "tokens", "resizes"), WORKED_EXAMPLES)
def test_worked_examples(
    width: int, height: int, detail: Detail | None, rw: int, rh: int, tokens: int, resizes: bool
) -> None:
    plan = RULES.plan(width, height, detail, ONEVISION_PUBLISHED, 2500)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (rw, rh, tokens)
    assert plan.loupe_resizes is resizes
    assert plan.detail_applied is (detail or Detail.HIGH)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=64, max_value=8192))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    low, auto, high = (
        RULES.plan(width, height, d, ONEVISION_PUBLISHED, budget)
        for d in (Detail.LOW, Detail.AUTO, Detail.HIGH)
    )
    assert low.tokens <= 2 * 729 + 27
    assert max(low.resized_width, low.resized_height) <= 384
    assert auto.tokens <= budget or auto == replace(low, detail_applied=Detail.AUTO)
    if high.tokens <= budget:
        assert auto == replace(high, detail_applied=Detail.AUTO)


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(10, 0, Detail.LOW, ONEVISION_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    assert OnevisionSettings.from_config({"num_image_tokens": 729}) == ONEVISION_PUBLISHED
    read = OnevisionSettings.from_config(
        {"num_image_tokens": 576, "vision_aspect_ratio": "anyres_max_16", "size": {"height": 336, "width": 336}}
    )
    assert (read.max_tiles, read.features_per_side, read.tile_height) == (16, 24, 336)
    assert read.pinpoints == PUBLISHED_PINPOINTS


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"num_image_tokens": 729, "vision_aspect_ratio": "anyres"},
        {"num_image_tokens": 729, "image_grid_pinpoints": [[384]]},
        {"num_image_tokens": 729, "image_grid_pinpoints": []},
        {"num_image_tokens": 729, "vision_feature_select_strategy": "cls"},
        {"num_image_tokens": 729, "size": {"shortest_edge": 384}},
    ],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        OnevisionSettings.from_config(config)
