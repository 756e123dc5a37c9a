"""Idefics3/SmolVLM plans against the real transformers processors (PIL backend), and the detail
rules. Token counts come from the processors' own prompt strings, split into tokens by rule."""

from __future__ import annotations

import re
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
from transformers.models.idefics3.processing_idefics3 import Idefics3Processor
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models.geometry import ImagePlan
from loupe.models.idefics3 import (
    IDEFICS3_PUBLISHED,
    SMOLVLM_PUBLISHED,
    Idefics3Rules,
    Idefics3Settings,
)
from tests.models.support import FAST as NO_PIXEL_MATH
from tests.models.support import SIDES, sample_sizes

RULES = Idefics3Rules("smolvlm", SMOLVLM_PUBLISHED)
BUDGET = 1024
# Padding, like the pixel arithmetic, leaves the geometry as it is: skip both.
FAST = {**NO_PIXEL_MATH, "do_pad": False}

SETTINGS = {
    "smolvlm-256m published": SMOLVLM_PUBLISHED,
    "no splitting": replace(SMOLVLM_PUBLISHED, do_image_splitting=False),
    "longest edge 1024": replace(SMOLVLM_PUBLISHED, longest_edge=1024),
    "idefics3 (hf class defaults)": Idefics3Settings.from_config({}),
    "odd tile 365, merged newlines": Idefics3Settings(
        longest_edge=1460, tile_edge=365, image_seq_len=100, double_newline_tokens=1
    ),
}

EDGE_SIZES = [
    (1, 1), (28, 28), (2, 1), (1, 2), (10000, 20), (20, 10000), (10000, 1), (512, 512),
    (513, 512), (1920, 1080), (1080, 1920), (4096, 4096), (5000, 300),
]  # fmt: skip

_SPECIAL = r"<fake_token_around_image>|<image>|<global-img>|<row_\d+_col_\d+>"
_TOKEN = re.compile(_SPECIAL + r"|\n")
_MERGED_TOKEN = re.compile(_SPECIAL + r"|\n\n|\n")


def count_tokens(prompt: str, double_newline_tokens: int) -> int:
    """Tokens of an image prompt string: each special token one, each "\\n" one, or each "\\n\\n"
    one when the tokenizer merges the pair. Fails if anything else is in the string."""
    pattern = _MERGED_TOKEN if double_newline_tokens == 1 else _TOKEN
    tokens = pattern.findall(prompt)
    assert "".join(tokens) == prompt
    return len(tokens)


def prompt_tokens(rows: int, cols: int, settings_: Idefics3Settings) -> int:
    """Tokens the processors insert for a rows x cols image, from both processors' own strings."""
    smolvlm = get_image_prompt_string(
        rows, cols, settings_.image_seq_len, "<fake_token_around_image>", "<image>", "<global-img>"
    )
    fields = {
        "fake_image_token": "<fake_token_around_image>",
        "image_token": "<image>",
        "global_image_tag": "<global-img>",
        "image_seq_len": settings_.image_seq_len,
    }
    idefics3 = Idefics3Processor.replace_image_token(
        SimpleNamespace(**fields), {"rows": [[rows]], "cols": [[cols]]}, 0
    )
    assert smolvlm == idefics3
    return count_tokens(smolvlm, settings_.double_newline_tokens)


def processor(settings_: Idefics3Settings) -> SmolVLMImageProcessorPil:
    return SmolVLMImageProcessorPil(
        size={"longest_edge": settings_.longest_edge},
        max_image_size={"longest_edge": settings_.tile_edge},
        do_image_splitting=settings_.do_image_splitting,
        do_resize=settings_.do_resize,
    )


def processed(
    proc: SmolVLMImageProcessorPil,
    settings_: Idefics3Settings,
    plan: ImagePlan,
    size: tuple[int, int],
) -> tuple[int, int, int]:
    """(tokens, rows, cols) as the processor makes them of a blank image, with the plan's
    overrides passed per call, as Loupe passes them."""
    out = proc(Image.new("RGB", size), return_row_col_info=True, **FAST, **plan.processor_kwargs())
    rows, cols = out["rows"][0][0], out["cols"][0][0]
    assert len(out["pixel_values"][0]) == rows * cols + 1
    return prompt_tokens(rows, cols, settings_), rows, cols


@pytest.mark.parametrize("name", SETTINGS)
def test_plans_equal_processor_for_every_detail(name: str) -> None:
    settings_ = SETTINGS[name]
    proc = processor(settings_)
    mismatches = []
    for size in EDGE_SIZES + sample_sizes(seed=len(name), count=70):
        for detail in (None, *Detail):
            plan = RULES.plan(*size, detail, settings_, BUDGET)
            tokens, rows, cols = processed(proc, settings_, plan, size)
            tile = settings_.tile_edge
            geometry = (plan.resized_height, plan.resized_width)
            expected = (rows * tile, cols * tile) if rows else (tile, tile)
            if plan.tokens != tokens or geometry != expected:
                mismatches.append((size, detail))
    assert mismatches == []


def test_the_idefics3_processor_agrees_with_the_smolvlm_one() -> None:
    settings_ = IDEFICS3_PUBLISHED
    proc = Idefics3ImageProcessorPil()
    for size in EDGE_SIZES[:8] + sample_sizes(seed=7, count=20):
        out = proc(Image.new("RGB", size), return_row_col_info=True, **FAST)
        tokens = prompt_tokens(out["rows"][0][0], out["cols"][0][0], settings_)
        assert RULES.plan(*size, None, settings_, BUDGET).tokens == tokens


WORKED_EXAMPLES = [
    # width, height, detail, canvas width, canvas height, tokens, overrides
    (1920, 1080, Detail.HIGH, 2048, 1536, 863, ()),
    (1920, 1080, Detail.AUTO, 2048, 1536, 863, ()),
    (1920, 1080, Detail.LOW, 512, 512, 67, (("do_image_splitting", False),)),
    (512, 512, Detail.HIGH, 2048, 2048, 1128, ()),
    (512, 512, Detail.AUTO, 1536, 1536, 665, (("size.longest_edge", 1536),)),
    (512, 512, Detail.LOW, 512, 512, 67, (("do_image_splitting", False),)),
]


@pytest.mark.parametrize(
    ("width", "height", "detail", "cw", "ch", "tokens", "overrides"), WORKED_EXAMPLES
)
def test_worked_examples_of_the_docs(
    width: int, height: int, detail: Detail, cw: int, ch: int, tokens: int, overrides: Any
) -> None:
    plan = RULES.plan(width, height, detail, SMOLVLM_PUBLISHED, BUDGET)
    assert plan == ImagePlan(detail, cw, ch, tokens, overrides)
    # The real processor at the published settings, full pipeline (LANCZOS, normalise, pad).
    proc = processor(SMOLVLM_PUBLISHED)
    image = Image.new("RGB", (width, height))
    out = proc(image, return_row_col_info=True, **plan.processor_kwargs())
    assert prompt_tokens(out["rows"][0][0], out["cols"][0][0], SMOLVLM_PUBLISHED) == tokens


def test_token_formula() -> None:
    # Single image: <fake><global-img> 64 x <image> <fake>.
    assert RULES.plan(100, 100, Detail.LOW, SMOLVLM_PUBLISHED, BUDGET).tokens == 64 + 3
    # 3 x 4 tiles: 12 x (64 + 2) + 3 newlines after rows + 1 newline + 67.
    assert RULES.plan(1920, 1080, None, SMOLVLM_PUBLISHED, BUDGET).tokens == 12 * 66 + 3 + 1 + 67
    merged = replace(SMOLVLM_PUBLISHED, double_newline_tokens=1)
    assert RULES.plan(1920, 1080, None, merged, BUDGET).tokens == 12 * 66 + 3 + 67


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=67, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    low, auto, high = (
        RULES.plan(width, height, d, SMOLVLM_PUBLISHED, budget)
        for d in (Detail.LOW, Detail.AUTO, Detail.HIGH)
    )
    assert low.tokens == 67
    assert low.tokens <= auto.tokens <= high.tokens
    assert auto.tokens <= budget
    if high.tokens <= budget:
        assert auto == replace(high, detail_applied=Detail.AUTO)
    elif auto.processor_overrides[0][0] == "size.longest_edge":
        # The next multiple of the tile edge up would not fit.
        edge = int(auto.processor_overrides[0][1]) + SMOLVLM_PUBLISHED.tile_edge
        bigger = replace(SMOLVLM_PUBLISHED, longest_edge=edge)
        assert edge == 2048 or RULES.plan(width, height, None, bigger, budget).tokens > budget


def test_auto_ends_at_one_tile_when_no_larger_edge_fits() -> None:
    plan = RULES.plan(1920, 1080, Detail.AUTO, SMOLVLM_PUBLISHED, 100)
    assert plan.processor_overrides == (("size.longest_edge", 512),)
    assert plan.tokens == 67


def test_auto_falls_back_to_no_splitting_when_even_one_tile_splits() -> None:
    # An odd tile edge rounds a square's other side up past it: one tile edge still splits.
    odd = Idefics3Settings(longest_edge=1460, tile_edge=365, image_seq_len=100)
    plan = RULES.plan(1000, 1000, Detail.AUTO, odd, 200)
    assert plan.processor_overrides == (("do_image_splitting", False),)
    assert plan.tokens == 103


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(10, 0, None, SMOLVLM_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {
        "size": {"longest_edge": 2048},
        "max_image_size": {"longest_edge": 512},
        "do_image_splitting": True,
        "image_seq_len": 64,
    }
    assert Idefics3Settings.from_config(published) == SMOLVLM_PUBLISHED
    assert Idefics3Settings.from_config({}) == IDEFICS3_PUBLISHED
    hf = SmolVLMImageProcessorPil()
    assert (hf.size["longest_edge"], hf.max_image_size["longest_edge"]) == (1456, 364)


@pytest.mark.parametrize(
    "config",
    [
        {"size": {"height": 512, "width": 512}},
        {"max_image_size": 512},
        {"do_image_splitting": "yes"},
        {"image_seq_len": -1},
        {"double_newline_tokens": 3},
    ],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        Idefics3Settings.from_config(config)
