"""Qwen-VL plans against the real transformers processor (PIL backend), and the detail rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models.qwen2_vl import (
    QWEN2_VL_PUBLISHED,
    QWEN3_VL_PUBLISHED,
    QwenRules,
    QwenSettings,
    settled_size,
    smart_resize,
)
from tests.models.support import SIDES, grid_processed, sample_sizes

RULES = QwenRules("qwen2-vl", QWEN2_VL_PUBLISHED)
BUDGET = 1024

SETTINGS = {
    "qwen2-vl published": QWEN2_VL_PUBLISHED,
    "hf class default": QwenSettings.from_config({}),
    "small max_pixels": QwenSettings(min_pixels=3136, max_pixels=200704),
    "qwen3-vl published": QWEN3_VL_PUBLISHED,
}

EDGE_SIZES = [
    (1, 1), (28, 28), (27, 29), (56, 56), (1, 200), (200, 1), (10000, 50), (50, 10000),
    (14, 2800), (4000, 20), (1024, 1024), (1024, 768), (1920, 1080), (1080, 1920),
    (3840, 2160), (6000, 4000),
]  # fmt: skip


def processor(settings: QwenSettings) -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(
        size={"shortest_edge": settings.min_pixels, "longest_edge": settings.max_pixels},
        patch_size=settings.patch_size,
        merge_size=settings.merge_size,
    )


@pytest.mark.parametrize("name", SETTINGS)
def test_high_plan_equals_processor_on_the_original_image(name: str) -> None:
    settings_ = SETTINGS[name]
    proc = processor(settings_)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=150, max_aspect=200):
        expected = grid_processed(proc, width, height)
        try:
            plan = RULES.plan(width, height, Detail.HIGH, settings_, BUDGET)
        except InvalidImageSize:
            # Refused only where the processor would refuse the resized image handed to it.
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
    for width, height in sample_sizes(seed=100 + len(name), count=60, max_aspect=200):
        for detail in (Detail.LOW, Detail.AUTO, Detail.HIGH):
            try:
                plan = RULES.plan(width, height, detail, settings_, BUDGET)
            except InvalidImageSize:
                continue
            size = (plan.tokens, plan.resized_height, plan.resized_width)
            if grid_processed(proc, plan.resized_width, plan.resized_height) != size:
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_aspect_ratio_beyond_200_is_refused_like_the_processor_does() -> None:
    proc = processor(QWEN2_VL_PUBLISHED)
    for width, height in [(10000, 20), (20, 10000), (201, 1)]:
        with pytest.raises(ValueError, match="aspect ratio"):
            proc(Image.new("RGB", (width, height)))
        for detail in (None, *Detail):
            with pytest.raises(InvalidImageSize):
                RULES.plan(width, height, detail, QWEN2_VL_PUBLISHED, BUDGET)


def test_a_planned_size_the_processor_would_refuse_is_refused() -> None:
    # 8200/41 is exactly 200, but rounding makes it 28 x 8204, which is more than 200.
    assert smart_resize(41, 8200, QWEN2_VL_PUBLISHED) == (28, 8204)
    with pytest.raises(InvalidImageSize):
        RULES.plan(8200, 41, Detail.HIGH, QWEN2_VL_PUBLISHED, BUDGET)


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(0, 10, None, QWEN2_VL_PUBLISHED, BUDGET)


def test_tight_bounds_settle_to_a_size_the_processor_keeps() -> None:
    tight = QwenSettings(min_pixels=3136, max_pixels=3136)
    once = smart_resize(20, 3000, tight)
    assert once == (28, 672)  # what the processor makes of the original: above max_pixels
    settled = settled_size(20, 3000, tight)
    assert settled == (28, 112)
    plan = RULES.plan(3000, 20, Detail.HIGH, tight, BUDGET)
    assert grid_processed(processor(tight), plan.resized_width, plan.resized_height) == (4, 28, 112)


WORKED_EXAMPLES = [
    # width, height, detail, resized width, resized height, tokens
    (1024, 1024, Detail.HIGH, 1036, 1036, 1369),
    (1024, 1024, Detail.AUTO, 896, 896, 1024),
    (1024, 1024, Detail.LOW, 448, 448, 256),
    (1024, 768, Detail.HIGH, 1036, 756, 999),
    (1024, 768, Detail.AUTO, 1036, 756, 999),
    (1920, 1080, Detail.HIGH, 1932, 1092, 2691),
    (1920, 1080, None, 1932, 1092, 2691),
    (1920, 1080, Detail.AUTO, 1176, 672, 1008),
    (1920, 1080, Detail.LOW, 448, 448, 256),
]


@pytest.mark.parametrize(("width", "height", "detail", "rw", "rh", "tokens"), WORKED_EXAMPLES)
def test_worked_examples_of_the_docs(
    width: int, height: int, detail: Detail | None, rw: int, rh: int, tokens: int
) -> None:
    plan = RULES.plan(width, height, detail, QWEN2_VL_PUBLISHED, BUDGET)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (rw, rh, tokens)
    assert plan.detail_applied is (detail or Detail.HIGH)
    assert plan.processor_overrides == ()
    # The real processor, at its defaults but for the published pixel bounds.
    proc = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    grid = proc(Image.new("RGB", (rw, rh)))["image_grid_thw"][0].tolist()
    assert grid[1] * grid[2] // 4 == tokens
    if detail in (None, Detail.HIGH):
        grid = proc(Image.new("RGB", (width, height)))["image_grid_thw"][0].tolist()
        assert grid[1] * grid[2] // 4 == tokens


OTHER_EXAMPLES = [
    # settings, width, height, detail, resized width, resized height, tokens
    (QWEN3_VL_PUBLISHED, 1920, 1080, Detail.HIGH, 1920, 1088, 2040),
    (QWEN3_VL_PUBLISHED, 1920, 1080, Detail.AUTO, 1344, 768, 1008),
    (QWEN3_VL_PUBLISHED, 1920, 1080, Detail.LOW, 512, 512, 256),
    (QwenSettings.from_config({}), 1920, 1080, Detail.HIGH, 1316, 728, 1222),
]


@pytest.mark.parametrize(
    ("settings_", "width", "height", "detail", "rw", "rh", "tokens"), OTHER_EXAMPLES
)
def test_worked_examples_of_other_settings(
    settings_: QwenSettings, width: int, height: int, detail: Detail, rw: int, rh: int, tokens: int
) -> None:
    plan = RULES.plan(width, height, detail, settings_, BUDGET)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (rw, rh, tokens)
    assert grid_processed(processor(settings_), rw, rh) == (tokens, rh, rw)


def test_low_detail_shrinks_when_max_pixels_is_below_448_squared() -> None:
    small = QwenSettings(min_pixels=3136, max_pixels=100352)
    plan = RULES.plan(1920, 1080, Detail.LOW, small, BUDGET)
    assert plan.resized_width * plan.resized_height <= small.max_pixels
    square = RULES.plan(1024, 1024, Detail.LOW, small, BUDGET)
    assert square.tokens == 121  # the low square, shrunk to fit max_pixels
    assert plan.tokens == min(121, RULES.plan(1920, 1080, Detail.HIGH, small, BUDGET).tokens)


def _plans(width: int, height: int, budget: int, settings_: QwenSettings) -> dict[Detail, Any]:
    return {d: RULES.plan(width, height, d, settings_, budget) for d in Detail}


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=64, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    try:
        plans = _plans(width, height, budget, QWEN2_VL_PUBLISHED)
    except InvalidImageSize:
        return
    low, auto, high = plans[Detail.LOW], plans[Detail.AUTO], plans[Detail.HIGH]
    assert low.tokens == min(256, high.tokens)  # low is 448x448, but never dearer than high
    assert auto.tokens <= high.tokens
    assert auto.tokens <= budget or auto.tokens == high.tokens
    if high.tokens <= budget:
        assert auto.tokens == high.tokens
    if width * height >= 2000 * 2000 and 512 <= budget < 2000:
        assert low.tokens < auto.tokens < high.tokens


def _downscale(width: int, height: int, longer: int) -> tuple[int, int]:
    """(height, width) scaled so the longer side is `longer`, the shorter rounded half up."""
    if width >= height:
        return max(1, (2 * height * longer + width) // (2 * width)), longer
    return longer, max(1, (2 * width * longer + height) // (2 * height))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    st.integers(min_value=1, max_value=700),
    st.integers(min_value=1, max_value=700),
    st.integers(min_value=64, max_value=300),
)
def test_auto_is_the_largest_downscale_that_fits(width: int, height: int, budget: int) -> None:
    try:
        auto = RULES.plan(width, height, Detail.AUTO, QWEN2_VL_PUBLISHED, budget)
    except InvalidImageSize:
        return
    if RULES.plan(width, height, Detail.HIGH, QWEN2_VL_PUBLISHED, budget).tokens <= budget:
        return  # then auto is high, asserted above
    fitting = []
    for longer in range(1, max(width, height) + 1):
        h, w = settled_size(*_downscale(width, height, longer), QWEN2_VL_PUBLISHED)
        tokens = (h // 28) * (w // 28)
        if tokens <= budget:
            fitting.append(tokens)
    assert auto.tokens == max(fitting)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2}
    assert QwenSettings.from_config(published) == QWEN2_VL_PUBLISHED
    qwen3 = {"size": {"longest_edge": 16777216, "shortest_edge": 65536}, "patch_size": 16}
    assert QwenSettings.from_config(qwen3) == QWEN3_VL_PUBLISHED
    assert QwenSettings.from_config({}) == QwenSettings(max_pixels=1003520)
    both = {"size": {"shortest_edge": 1, "longest_edge": 2_000_000}, "max_pixels": 1_000_000}
    assert QwenSettings.from_config(both).max_pixels == 1_000_000
    hf = Qwen2VLImageProcessorPil(**both)
    assert hf.size["longest_edge"] == 1_000_000


@pytest.mark.parametrize(
    "config",
    [
        {"max_pixels": "big"},
        {"size": {"shortest_edge": 3136}},
        {"min_pixels": 10_000_000, "max_pixels": 1_000_000},
        {"patch_size": 0},
        {"max_pixels": 100},
    ],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        QwenSettings.from_config(config)
