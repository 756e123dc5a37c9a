"""InternVL plans against the real InternVLProcessor (PIL backend, tiny checkpoint's tokenizer),
and the detail rules."""

from __future__ import annotations

import json
import shutil
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
from loupe.models.internvl import INTERNVL_PUBLISHED, InternVLRules, InternVLSettings
from tests.models.support import FAST, SIDES, sample_sizes

RULES = InternVLRules()
WRAPPERS = 2  # `<img>` and `</img>` around an image's `<IMG_CONTEXT>` tokens
BUDGET = 1024

EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (448, 448), (449, 448), (896, 448), (10000, 20), (20, 10000),
    (5000, 1), (1, 5000), (1920, 1080), (1080, 1920), (4096, 4096), (570, 380),
]  # fmt: skip

VARIANTS: dict[str, dict[str, Any]] = {
    "published": {},
    "max 6, min 2": {"max_patches": 6, "min_patches": 2},
    "class defaults (384, 1..12)": {"size": None, "max_patches": None, "min_patches": None},
    "max 1": {"max_patches": 1},
}


@pytest.fixture(scope="module")
def variant(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Any, InternVLSettings]]:
    """The processor and the counter's settings of a copy of the tiny checkpoint whose
    preprocessor_config.json is changed as the variant says (None: key removed)."""

    def get(name: str) -> tuple[Any, InternVLSettings]:
        copy = tmp_path_factory.mktemp("internvl") / "checkpoint"
        shutil.copytree(tiny_checkpoint("internvl"), copy)
        path = copy / "preprocessor_config.json"
        pre = {**json.loads(path.read_text()), **VARIANTS[name]}
        pre = {k: v for k, v in pre.items() if v is not None}
        path.write_text(json.dumps(pre))
        proc = json.loads((copy / "processor_config.json").read_text())
        return load_processor(str(copy)), RULES.settings(cfg.merged(pre, proc))

    return get


def processor_tokens(processor: Any, width: int, height: int, kwargs: dict[str, Any]) -> int:
    """Tokens the processor inserts for a blank image: `<img>`, `<IMG_CONTEXT>`s, `</img>`."""
    out = processor(
        text=["<IMG_CONTEXT>"], images=[Image.new("RGB", (width, height))], **FAST, **kwargs
    )
    ids = set(processor.image_token_ids)
    return sum(1 for i in out["input_ids"][0] if i in ids)


@pytest.mark.parametrize("name", VARIANTS)
def test_plans_equal_the_processor_for_every_detail(
    name: str, variant: Callable[[str], tuple[Any, InternVLSettings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=300):
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, settings_, BUDGET)
            kwargs = plan.processor_kwargs()
            counted = processor._get_num_multimodal_tokens([(height, width)], **kwargs)
            # The processor counts `<IMG_CONTEXT>`s only; the plan adds `<img>` and `</img>`.
            if plan.tokens != counted["num_image_tokens"][0] + WRAPPERS:
                mismatches.append((width, height, detail))
    assert mismatches == []


@pytest.mark.parametrize("name", VARIANTS)
def test_the_expanded_text_agrees(
    name: str, variant: Callable[[str], tuple[Any, InternVLSettings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=100 + len(name), count=25):
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, settings_, BUDGET)
            if plan.tokens != processor_tokens(processor, width, height, plan.processor_kwargs()):
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_the_processor_tiles_whatever_the_file_says(
    variant: Callable[[str], tuple[Any, InternVLSettings]],
) -> None:
    processor, settings_ = variant("published")
    assert processor.image_processor.crop_to_patches is False  # as published
    assert settings_ == INTERNVL_PUBLISHED
    assert processor_tokens(processor, 570, 380, {}) == 2 + 256 * 7


WORKED_EXAMPLES = [
    # width, height, detail, canvas width, canvas height, tokens, overrides
    (570, 380, Detail.HIGH, 1344, 896, 1794, ()),
    (570, 380, Detail.AUTO, 896, 448, 770, (("max_patches", 5),)),
    (570, 380, Detail.LOW, 448, 448, 258, (("crop_to_patches", False),)),
    (1920, 1080, None, 1792, 896, 2306, ()),
    (448, 448, Detail.HIGH, 448, 448, 258, ()),
    (448, 448, Detail.AUTO, 448, 448, 258, ()),
    (10000, 20, Detail.HIGH, 5376, 448, 3330, ()),
]


@pytest.mark.parametrize(
    ("width", "height", "detail", "cw", "ch", "tokens", "overrides"), WORKED_EXAMPLES
)
def test_worked_examples(
    width: int, height: int, detail: Detail | None, cw: int, ch: int, tokens: int, overrides: Any
) -> None:
    plan = RULES.plan(width, height, detail, INTERNVL_PUBLISHED, BUDGET)
    got = (plan.resized_width, plan.resized_height, plan.tokens, plan.processor_overrides)
    assert got == (cw, ch, tokens, overrides)
    assert plan.detail_applied is (detail or Detail.HIGH)
    assert not plan.loupe_resizes


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=258, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    low, auto, high = (
        RULES.plan(width, height, d, INTERNVL_PUBLISHED, budget)
        for d in (Detail.LOW, Detail.AUTO, Detail.HIGH)
    )
    assert low.tokens == 258
    assert low.tokens <= auto.tokens <= high.tokens
    assert auto.tokens <= budget
    if high.tokens <= budget:
        assert auto == replace(high, detail_applied=Detail.AUTO)
    elif auto.processor_overrides[0][0] == "max_patches":
        # The next max_patches up would not fit.
        bigger = int(auto.processor_overrides[0][1]) + 1
        plan = RULES.plan(width, height, None, replace(INTERNVL_PUBLISHED, max_patches=bigger), 1)
        assert plan.tokens > budget


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(0, 10, None, INTERNVL_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {"size": {"height": 448, "width": 448}, "max_patches": 12, "min_patches": 1}
    assert InternVLSettings.from_config({**published, "image_seq_length": 256}) == (
        INTERNVL_PUBLISHED
    )
    assert InternVLSettings.from_config({}) == InternVLSettings(tile_height=384, tile_width=384)


@pytest.mark.parametrize(
    "config", [{"size": 448}, {"size": {"width": 448}}, {"max_patches": 0}, {"image_seq_length": "x"}]
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        InternVLSettings.from_config(config)
