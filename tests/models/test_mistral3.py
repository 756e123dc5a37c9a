"""Mistral 3 plans against the real PixtralProcessor (PIL backend, tiny checkpoint's tokenizer),
and the detail rules."""

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
from loupe.models.mistral3 import MISTRAL3_PUBLISHED, Mistral3Rules, Mistral3Settings
from tests.models.support import FAST, SIDES, changed_copy, sample_sizes

RULES = Mistral3Rules()
BUDGET = 1024

EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (27, 29), (28, 28), (29, 28), (1540, 1540), (1541, 1540), (3080, 5),
    (5, 3080), (10000, 50), (50, 10000), (1920, 1080), (1080, 1920), (4096, 4096), (570, 380),
    (20000, 20000),
]  # fmt: skip

# (preprocessor_config changes, processor_config changes); None removes a key.
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "published": ({}, {}),
    "class defaults (1024, patch 16, no merge)": (
        {"size": None, "patch_size": None},
        {"patch_size": None, "spatial_merge_size": None},
    ),
    "edge not a whole number of patches": ({"size": {"longest_edge": 1000}}, {}),
    "height and width": ({"size": {"height": 700, "width": 1100}}, {}),
}


@pytest.fixture(scope="module")
def variant(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Any, Mistral3Settings]]:
    """The processor and the counter's settings of a copy of the tiny checkpoint changed as the
    variant says."""

    def get(name: str) -> tuple[Any, Mistral3Settings]:
        parent = tmp_path_factory.mktemp("mistral3")
        copy, files = changed_copy(tiny_checkpoint("mistral3"), parent, VARIANTS[name])
        for path, content in zip(("preprocessor", "processor"), files, strict=True):
            kept = {k: v for k, v in content.items() if v is not None}
            (copy / f"{path}_config.json").write_text(__import__("json").dumps(kept))
        pre, proc = ({k: v for k, v in f.items() if v is not None} for f in files)
        return load_processor(str(copy)), RULES.settings(cfg.merged(pre, proc))

    return get


def expanded(processor: Any, width: int, height: int) -> tuple[int, tuple[int, int]]:
    """Image tokens in the processor's prompt for a blank image, and the size it works at."""
    out = processor(text=["[IMG]"], images=[Image.new("RGB", (width, height))], **FAST)
    ids = set(processor.image_token_ids)
    tokens = sum(1 for i in out["input_ids"][0].tolist() if i in ids)
    height_, width_ = (int(v) for v in out["image_sizes"][0])
    return tokens, (width_, height_)


# transformers' own count reads `size.longest_edge` only, and does not settle (see mistral3.py).
COUNTED_VARIANTS = ["published", "class defaults (1024, patch 16, no merge)"]


@pytest.mark.parametrize("name", COUNTED_VARIANTS)
def test_high_equals_the_processor_count_of_the_original(
    name: str, variant: Callable[[str], tuple[Any, Mistral3Settings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=400, decades=4.3):
        if height in (1, 3):
            continue  # the helper's blank array of height 1 or 3 reads as channels first
        try:
            plan = RULES.plan(width, height, Detail.HIGH, settings_, BUDGET)
        except InvalidImageSize:
            plan = None
        try:
            counted = processor._get_num_multimodal_tokens([(height, width)])["num_image_tokens"][0]
        except ValueError:
            counted = None
        # The processor counts `[IMG]`s; a row's `[IMG_BREAK]` (the last one an `[IMG_END]`) too.
        rows = None if plan is None else plan.resized_height // settings_.factor
        ours = None if plan is None else plan.tokens - rows  # type: ignore[operator]
        if ours != (counted or None):
            mismatches.append((width, height, ours, counted))
    assert mismatches == []


@pytest.mark.parametrize("name", VARIANTS)
def test_the_expanded_text_agrees_and_the_processor_keeps_the_planned_size(
    name: str, variant: Callable[[str], tuple[Any, Mistral3Settings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES[:-1] + sample_sizes(seed=100 + len(name), count=15):
        for detail in (None, *Detail):
            try:
                plan = RULES.plan(width, height, detail, settings_, BUDGET)
            except InvalidImageSize:
                continue
            handed = (plan.resized_width, plan.resized_height)
            if expanded(processor, *handed) != (plan.tokens, handed):
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_the_original_goes_to_the_same_size_at_high(
    variant: Callable[[str], tuple[Any, Mistral3Settings]],
) -> None:
    processor, settings_ = variant("published")
    for width, height in [(570, 380), (1920, 1080), (1, 1), (3000, 40)]:
        plan = RULES.plan(width, height, None, settings_, BUDGET)
        assert expanded(processor, width, height) == (
            plan.tokens,
            (plan.resized_width, plan.resized_height),
        )


def test_an_image_shrunk_to_nothing_is_refused_like_the_processor_refuses_it(
    variant: Callable[[str], tuple[Any, Mistral3Settings]],
) -> None:
    processor, settings_ = variant("published")
    with pytest.raises(ValueError):
        processor(text=["[IMG]"], images=[Image.new("RGB", (10000, 1))], **FAST)
    for detail in (None, *Detail):
        with pytest.raises(InvalidImageSize):
            RULES.plan(10000, 1, detail, settings_, BUDGET)


WORKED_EXAMPLES = [
    # width, height, detail, handed-over width, height, tokens
    (1024, 1024, Detail.HIGH, 1036, 1036, 1406),
    (1024, 1024, Detail.AUTO, 868, 868, 992),
    (1024, 1024, Detail.LOW, 448, 448, 272),
    (1920, 1080, None, 1540, 868, 1736),
    (1920, 1080, Detail.AUTO, 1148, 672, 1008),
    (1920, 1080, Detail.LOW, 448, 252, 153),
    (570, 380, Detail.HIGH, 588, 392, 308),
    (570, 380, Detail.AUTO, 588, 392, 308),
    (570, 380, Detail.LOW, 448, 308, 187),
    (1, 1, Detail.LOW, 28, 28, 2),
]


@pytest.mark.parametrize(("width", "height", "detail", "w", "h", "tokens"), WORKED_EXAMPLES)
def test_worked_examples(
    width: int, height: int, detail: Detail | None, w: int, h: int, tokens: int
) -> None:
    plan = RULES.plan(width, height, detail, MISTRAL3_PUBLISHED, BUDGET)
    assert (plan.resized_width, plan.resized_height, plan.tokens) == (w, h, tokens)
    assert plan.detail_applied is (detail or Detail.HIGH)
    assert plan.loupe_resizes and plan.processor_overrides == ()


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=300, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    try:
        high = RULES.plan(width, height, Detail.HIGH, MISTRAL3_PUBLISHED, budget)
    except InvalidImageSize:
        return
    low, auto = (RULES.plan(width, height, d, MISTRAL3_PUBLISHED, budget) for d in (Detail.LOW, Detail.AUTO))
    assert low.tokens <= min(high.tokens, 16 * 17)
    assert auto.tokens <= high.tokens
    if high.tokens <= budget:
        assert auto == replace(high, detail_applied=Detail.AUTO)
    else:
        assert auto.tokens <= budget
        # One more patch on the longer side would not fit.
        longer = max(auto.resized_width, auto.resized_height) + MISTRAL3_PUBLISHED.factor
        bigger = RULES.plan(longer, longer, Detail.HIGH, MISTRAL3_PUBLISHED, budget)
        assert bigger.tokens > auto.tokens


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {"size": {"longest_edge": 1540}, "patch_size": 14, "spatial_merge_size": 2}
    assert Mistral3Settings.from_config(published) == MISTRAL3_PUBLISHED
    assert Mistral3Settings.from_config({}) == Mistral3Settings(1024, 1024, 16, 1)
    pixtral = {"size": {"longest_edge": 1024}, "patch_size": {"height": 16, "width": 16}}
    assert Mistral3Settings.from_config(pixtral) == Mistral3Settings(1024, 1024, 16, 1)


@pytest.mark.parametrize(
    "config",
    [{"size": 1540}, {"size": {"height": 10}}, {"patch_size": 0}, {"patch_size": {"height": 14, "width": 16}}],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        Mistral3Settings.from_config(config)
