"""GLM-4.1V plans against the real transformers image processor (PIL backend); the detail rules."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.glm4v.image_processing_pil_glm4v import Glm4vImageProcessorPil

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models.glm4v import (
    GLM4V_PUBLISHED,
    Glm4vRules,
    Glm4vSettings,
    settled_size,
    smart_resize,
)
from tests.models.support import SIDES, grid_processed

RULES = Glm4vRules("glm4v", GLM4V_PUBLISHED)
BUDGET = 1024

SETTINGS = {
    "glm-4.1v published": GLM4V_PUBLISHED,
    "hf class default": Glm4vSettings.from_config({}),
    "small max_pixels": Glm4vSettings(max_pixels=401408),
    "one frame, patch 16": Glm4vSettings(patch_size=16, temporal_patch_size=1),
}

EDGE_SIZES = [
    (1, 1), (27, 27), (28, 28), (29, 27), (56, 56), (84, 84), (1, 200), (200, 1), (1, 201),
    (3, 600), (10, 2001), (14, 2800), (4000, 20), (20, 4000), (11541, 58), (1024, 1024),
    (1024, 768), (1920, 1080), (1080, 1920), (3840, 2160), (6000, 4000),
]  # fmt: skip


def processor(settings_: Glm4vSettings) -> Glm4vImageProcessorPil:
    return Glm4vImageProcessorPil(
        size={"shortest_edge": settings_.min_pixels, "longest_edge": settings_.max_pixels},
        patch_size=settings_.patch_size,
        merge_size=settings_.merge_size,
        temporal_patch_size=settings_.temporal_patch_size,
    )


def sample_sizes(seed: int, count: int) -> list[tuple[int, int]]:
    """Sizes log-uniform from 1 to 5000 a side, a fifth of them near the 200 aspect-ratio limit;
    at most 30 megapixels, so the processor's own run stays cheap."""
    rng = random.Random(seed)
    sizes = []
    while len(sizes) < count:
        width, height = (round(10 ** rng.uniform(0, 3.7)) for _ in range(2))
        if rng.random() < 0.2:
            width = max(1, height * rng.choice([150, 199, 200, 201]) + rng.randint(-2, 2))
        if width * height <= 30_000_000:
            sizes.append((width, height) if rng.random() < 0.5 else (height, width))
    return sizes


@pytest.mark.parametrize("name", SETTINGS)
def test_high_plan_equals_processor_on_the_original_image(name: str) -> None:
    settings_ = SETTINGS[name]
    proc = processor(settings_)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=150):
        try:
            expected: tuple[int, int, int] | None = grid_processed(proc, width, height)
        except ValueError:
            expected = None  # the processor refuses the original
        try:
            plan = RULES.plan(width, height, Detail.HIGH, settings_, BUDGET)
        except InvalidImageSize:
            # Refused where the processor refuses the original, or the resized image handed to it.
            if expected is not None:
                _, rh, rw = expected
                if max(rh, rw) / min(rh, rw) <= 200:
                    mismatches.append((width, height))
            continue
        if (plan.tokens, plan.resized_height, plan.resized_width) != expected:
            mismatches.append((width, height))
    assert mismatches == []


@pytest.mark.parametrize("name", SETTINGS)
def test_every_plan_is_a_size_the_processor_keeps(name: str) -> None:
    settings_ = SETTINGS[name]
    proc = processor(settings_)
    mismatches = []
    for width, height in sample_sizes(seed=100 + len(name), count=40):
        for detail in (Detail.LOW, Detail.AUTO, Detail.HIGH):
            try:
                plan = RULES.plan(width, height, detail, settings_, BUDGET)
            except InvalidImageSize:
                continue
            assert plan.loupe_resizes and plan.processor_overrides == ()
            size = (plan.tokens, plan.resized_height, plan.resized_width)
            if grid_processed(proc, plan.resized_width, plan.resized_height) != size:
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_aspect_ratio_beyond_200_is_refused_like_the_processor_does() -> None:
    proc = processor(GLM4V_PUBLISHED)
    for width, height in [(10000, 20), (20, 10000), (201, 1), (1, 201)]:
        with pytest.raises(ValueError, match="aspect ratio"):
            proc(Image.new("RGB", (width, height)))
        for detail in (None, *Detail):
            with pytest.raises(InvalidImageSize):
                RULES.plan(width, height, detail, GLM4V_PUBLISHED, BUDGET)


def test_a_planned_size_the_processor_would_refuse_is_refused() -> None:
    # 11541/58 is below 200, but rounding makes it 56 x 11536, which is above.
    assert smart_resize(58, 11541, GLM4V_PUBLISHED) == (56, 11536)
    with pytest.raises(InvalidImageSize):
        RULES.plan(11541, 58, Detail.HIGH, GLM4V_PUBLISHED, BUDGET)


def test_a_side_shorter_than_one_token_grows_first() -> None:
    # 1 x 200 grows 28-fold to 28 x 5600; 10 x 10 to 28 x 28, then to the 2 * 84 * 84 bound.
    assert smart_resize(1, 200, GLM4V_PUBLISHED) == (28, 5600)
    assert smart_resize(10, 10, GLM4V_PUBLISHED) == (84, 84)
    assert RULES.plan(10, 10, None, GLM4V_PUBLISHED, BUDGET).tokens == 9


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(0, 10, None, GLM4V_PUBLISHED, BUDGET)


def test_tight_bounds_settle_to_a_size_the_processor_keeps() -> None:
    tight = Glm4vSettings(min_pixels=2 * 784, max_pixels=2 * 784)
    assert smart_resize(20, 3000, tight) == (28, 336)  # above max_pixels: not yet settled
    assert settled_size(20, 3000, tight) == (28, 28)
    plan = RULES.plan(3000, 20, Detail.HIGH, tight, BUDGET)
    assert grid_processed(processor(tight), plan.resized_width, plan.resized_height) == (1, 28, 28)


WORKED_EXAMPLES = [
    # width, height, detail, resized width, resized height, tokens
    (570, 380, Detail.HIGH, 560, 392, 280),
    (570, 380, Detail.LOW, 448, 448, 256),
    (1024, 1024, Detail.HIGH, 1036, 1036, 1369),
    (1024, 1024, Detail.AUTO, 896, 896, 1024),
    (1920, 1080, None, 1932, 1092, 2691),
    (1920, 1080, Detail.AUTO, 1176, 672, 1008),
    (1920, 1080, Detail.LOW, 448, 448, 256),
    (6000, 4000, Detail.HIGH, 2688, 1792, 6144),
]


@pytest.mark.parametrize(("width", "height", "detail", "rw", "rh", "tokens"), WORKED_EXAMPLES)
def test_worked_examples(
    width: int, height: int, detail: Detail | None, rw: int, rh: int, tokens: int
) -> None:
    plan = RULES.plan(width, height, detail, GLM4V_PUBLISHED, BUDGET)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (rw, rh, tokens)
    assert plan.detail_applied is (detail or Detail.HIGH)
    assert grid_processed(processor(GLM4V_PUBLISHED), rw, rh) == (tokens, rh, rw)


def _plans(width: int, height: int, budget: int) -> dict[Detail, Any]:
    return {d: RULES.plan(width, height, d, GLM4V_PUBLISHED, budget) for d in Detail}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=64, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    try:
        plans = _plans(width, height, budget)
    except InvalidImageSize:
        return
    low, auto, high = plans[Detail.LOW], plans[Detail.AUTO], plans[Detail.HIGH]
    if high.tokens <= 256:  # low never enlarges an image to make it "cheaper"
        assert (low.resized_width, low.resized_height, low.tokens) == (high.resized_width, high.resized_height, high.tokens)
    else:
        assert (low.resized_width, low.resized_height, low.tokens) == (448, 448, 256)
    assert auto.tokens <= high.tokens
    assert auto.tokens <= budget or auto.tokens == high.tokens
    if high.tokens <= budget:
        assert (auto.resized_width, auto.resized_height, auto.tokens) == (
            high.resized_width,
            high.resized_height,
            high.tokens,
        )
    if width * height >= 2000 * 2000 and 512 <= budget < 2000:
        assert low.tokens < auto.tokens < high.tokens


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {
        "size": {"shortest_edge": 12544, "longest_edge": 9633792},
        "patch_size": 14,
        "merge_size": 2,
        "temporal_patch_size": 2,
    }
    assert Glm4vSettings.from_config(published) == GLM4V_PUBLISHED
    default = Glm4vImageProcessorPil()
    assert Glm4vSettings.from_config({}) == Glm4vSettings(
        min_pixels=default.size["shortest_edge"],
        max_pixels=default.size["longest_edge"],
        patch_size=default.patch_size,
        merge_size=default.merge_size,
        temporal_patch_size=default.temporal_patch_size,
    )
    assert RULES.settings(published) == RULES.published()


@pytest.mark.parametrize(
    "config",
    [
        {"size": {"longest_edge": 9633792}},
        {"size": {"shortest_edge": 20000, "longest_edge": 10000}},
        {"size": {"shortest_edge": 1, "longest_edge": 100}},
        {"patch_size": 0},
        {"merge_size": "2"},
    ],
)
def test_bad_settings_are_refused_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        Glm4vSettings.from_config(config)
