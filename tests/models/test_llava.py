"""LLaVA-1.5 plans against the real LlavaProcessor (CLIP image processor, PIL backend, tiny
checkpoint's tokenizer): one fixed cost for every image and every detail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loupe.domain import Detail
from loupe.engines.local.processor import load_processor
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models import config as cfg
from loupe.models.llava import LLAVA_PUBLISHED, LlavaRules, LlavaSettings
from tests.models.support import SIDES, changed_copy, image_token_count, sample_sizes

RULES = LlavaRules()
BUDGET = 1024

# CLIP resizes the shorter side to 336 first, so a 1 x 200 image is 336 x 67,200 for a moment:
# the ratios run to 200, not beyond, to keep the run light.
EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (336, 336), (337, 335), (200, 1), (1, 200), (3000, 15),
    (15, 3000), (1920, 1080), (570, 380),
]  # fmt: skip

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (preprocessor_config changes, processor_config changes)
    "published": ({}, {}),
    "224 crop, full strategy, no extra": (
        {"crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 224}},
        {"vision_feature_select_strategy": "full", "num_additional_image_tokens": 0},
    ),
    "no resize": ({"do_resize": False}, {}),
}


@pytest.fixture(scope="module")
def variant(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Any, LlavaSettings]]:
    """The processor and the counter's settings of a copy of the tiny checkpoint whose
    processor files are changed as the variant says."""

    def get(name: str) -> tuple[Any, LlavaSettings]:
        parent = tmp_path_factory.mktemp("llava")
        copy, files = changed_copy(tiny_checkpoint("llava"), parent, VARIANTS[name])
        return load_processor(str(copy)), RULES.settings(cfg.merged(*files))

    return get


@pytest.mark.parametrize("name", VARIANTS)
def test_plans_equal_the_processor_for_every_detail(
    name: str, variant: Callable[[str], tuple[Any, LlavaSettings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    # Sizes from 1 to 2000 a side, aspect ratios up to 20.
    sizes = sample_sizes(seed=len(name), count=200, decades=3.3, max_aspect=20)
    for width, height in EDGE_SIZES + sizes:
        expected = image_token_count(processor, width, height)
        counted = processor._get_num_multimodal_tokens([(height, width)])["num_image_tokens"][0]
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, settings_, BUDGET)
            if not plan.tokens == expected == counted or plan.processor_overrides:
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_the_published_count_is_576(variant: Callable[[str], tuple[Any, LlavaSettings]]) -> None:
    _, settings_ = variant("published")
    assert settings_ == LLAVA_PUBLISHED
    assert settings_.tokens == 24 * 24 == 576


@settings(max_examples=200, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.sampled_from([None, *Detail]), st.integers(min_value=1, max_value=4096))
def test_every_image_and_detail_costs_the_same(
    width: int, height: int, detail: Detail | None, budget: int
) -> None:
    plan = RULES.plan(width, height, detail, LLAVA_PUBLISHED, budget)
    assert (plan.tokens, plan.resized_width, plan.resized_height) == (576, 336, 336)
    assert plan.detail_applied is (detail or Detail.HIGH)
    assert not plan.loupe_resizes


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(5, 0, Detail.LOW, LLAVA_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {
        "crop_size": {"height": 336, "width": 336},
        "patch_size": 14,
        "num_additional_image_tokens": 1,
        "vision_feature_select_strategy": "default",
    }
    assert LlavaSettings.from_config(published) == LLAVA_PUBLISHED
    # The processor's defaults: a 224 crop, no extra token, nothing dropped.
    assert LlavaSettings.from_config({"patch_size": 14}).tokens == 16 * 16


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"patch_size": 14, "do_center_crop": False},
        {"patch_size": 14, "num_additional_image_tokens": -1},
        {"patch_size": 14, "vision_feature_select_strategy": "cls"},
        {"patch_size": 14, "crop_size": {"height": 336}},
        {"patch_size": 400},
    ],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        LlavaSettings.from_config(config)
