"""Llama 4 plans against transformers' own arithmetic and the real Llama4Processor's prompt text,
and the detail rules.

transformers' Llama 4 image processor module imports torchvision, which Loupe's venv never has;
its canvas functions use torch alone, so the test runs them from that module's source (parsed,
its functions taken as they are) to compare with Loupe's float32 restatement."""

from __future__ import annotations

import ast
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers.models.llama4 as hf_llama4
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers.image_utils import SizeDict

from loupe.domain import Detail
from loupe.engines.local.processor import load_processor
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models.llama4 import (
    LLAMA4_PUBLISHED,
    Llama4Rules,
    Llama4Settings,
    best_canvas,
    canvases,
    fitted_size,
)
from tests.models.support import FAST, SIDES, sample_sizes

RULES = Llama4Rules()
BUDGET = 1024
_HF_FUNCTIONS = ("get_factors", "get_max_res_without_distortion", "find_supported_resolutions", "get_best_fit")

EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (335, 336), (336, 336), (337, 336), (672, 336), (673, 673), (1344, 1344),
    (1345, 1344), (10000, 20), (20, 10000), (5000, 1), (1, 5000), (1920, 1080), (1080, 1920),
    (4096, 4096), (570, 380), (810, 1080), (1280, 720), (1000, 667), (1024, 899), (1430, 798),
]  # fmt: skip


# Sizes run through the whole processor (blank images; the arithmetic test above takes the rest).
PROCESSED_SIZES = [
    (1, 1), (2, 1), (335, 336), (337, 336), (673, 673), (570, 380), (1920, 1080), (810, 1080),
    (3000, 40),
]  # fmt: skip


@pytest.fixture(scope="module")
def hf() -> dict[str, Any]:
    """transformers' canvas functions, from its Llama 4 image processor's source."""
    source = (Path(hf_llama4.__file__).parent / "image_processing_llama4.py").read_text()
    tree = ast.parse(source)
    kept = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in _HF_FUNCTIONS]
    assert [n.name for n in kept] == list(_HF_FUNCTIONS)
    namespace: dict[str, Any] = {
        "math": math, "torch": torch, "defaultdict": defaultdict, "lru_cache": lru_cache, "SizeDict": SizeDict,
    }  # fmt: skip
    exec(compile(ast.Module(body=kept, type_ignores=[]), "image_processing_llama4", "exec"), namespace)
    return namespace


def hf_geometry(hf: dict[str, Any], height: int, width: int, max_patches: int, to_max: bool = False) -> Any:
    """The canvas and fitted size as transformers' `_preprocess` computes them."""
    tile = SizeDict(height=336, width=336)
    options = torch.tensor(hf["find_supported_resolutions"](max_num_chunks=max_patches, patch_size=tile))
    canvas = hf["get_best_fit"]((height, width), options, resize_to_max_canvas=to_max)
    if to_max:
        bound = canvas
    else:
        bound = (min(max(height, 336), canvas[0]), min(max(width, 336), canvas[1]))
    fitted = hf["get_max_res_without_distortion"]((height, width), bound)
    return (int(canvas[0]), int(canvas[1])), (max(int(fitted[0]), 1), max(int(fitted[1]), 1))


def test_canvases_in_the_processor_order(hf: dict[str, Any]) -> None:
    for max_patches in (1, 2, 4, 7, 12, 16, 30):
        hf["find_supported_resolutions"].cache_clear()
        tile = SizeDict(height=336, width=336)
        assert canvases(max_patches, 336) == hf["find_supported_resolutions"](max_patches, tile)


@pytest.mark.parametrize("to_max", [False, True])
@pytest.mark.parametrize("max_patches", [16, 5, 1])
def test_canvas_and_fitted_size_equal_transformers(
    hf: dict[str, Any], max_patches: int, to_max: bool
) -> None:
    ours = replace(LLAMA4_PUBLISHED, resize_to_max_canvas=to_max)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=max_patches, count=400, decades=4.3):
        canvas = best_canvas(height, width, max_patches, ours)
        got = (canvas, fitted_size(height, width, canvas, ours))
        if got != hf_geometry(hf, height, width, max_patches, to_max):
            mismatches.append((width, height))
    assert mismatches == []


@pytest.fixture(scope="module")
def processor(tiny_checkpoint: Callable[[str], Path]) -> Any:
    return load_processor(str(tiny_checkpoint("llama4")))


def expanded(processor: Any, width: int, height: int, kwargs: dict[str, Any]) -> tuple[int, int]:
    """Image tokens in the prompt the real Llama4Processor makes for a blank image (through
    Loupe's image processor), and its tiles."""
    image = Image.new("RGB", (width, height))
    cheap = {k: v for k, v in FAST.items() if k != "resample"}  # resizes bilinear, as published
    out = processor(
        text=["<|image|>"], images=[image], add_special_tokens=False, return_tensors="pt", **cheap, **kwargs
    )
    return len(out["input_ids"][0]), int(out["pixel_values"].shape[0])


def test_the_processor_counts_with_transformers_arithmetic(processor: Any) -> None:
    assert processor._get_num_multimodal_tokens  # its own count needs the torchvision module
    mismatches = []
    for width, height in PROCESSED_SIZES + sample_sizes(seed=7, count=6, decades=3.2):
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, LLAMA4_PUBLISHED, BUDGET)
            tokens, tiles = expanded(processor, width, height, plan.processor_kwargs())
            canvas_tiles = plan.resized_width * plan.resized_height // 336**2
            if (tokens, tiles) != (plan.tokens, canvas_tiles + (canvas_tiles > 1)):
                mismatches.append((width, height, detail))
    assert mismatches == []


WORKED_EXAMPLES = [
    # width, height, detail, canvas width, canvas height, tokens, overrides
    (1024, 1024, Detail.HIGH, 1344, 1344, 2467, ()),
    (1024, 1024, Detail.AUTO, 672, 672, 727, (("max_patches", 8),)),
    (1024, 1024, Detail.LOW, 336, 336, 147, (("max_patches", 1),)),
    (1920, 1080, None, 1680, 1008, 2322, ()),
    (1920, 1080, Detail.AUTO, 1008, 672, 1017, (("max_patches", 7),)),
    (570, 380, Detail.HIGH, 672, 672, 727, ()),
    (570, 380, Detail.AUTO, 672, 672, 727, ()),
    (336, 336, Detail.HIGH, 336, 336, 147, ()),
    (1, 1, Detail.HIGH, 336, 336, 147, ()),
]


@pytest.mark.parametrize(("width", "height", "detail", "cw", "ch", "tokens", "overrides"), WORKED_EXAMPLES)
def test_worked_examples(
    width: int, height: int, detail: Detail | None, cw: int, ch: int, tokens: int, overrides: Any
) -> None:
    plan = RULES.plan(width, height, detail, LLAMA4_PUBLISHED, BUDGET)
    assert (plan.resized_width, plan.resized_height, plan.tokens, plan.processor_overrides) == (
        cw, ch, tokens, overrides,
    )  # fmt: skip
    assert plan.detail_applied is (detail or Detail.HIGH) and not plan.loupe_resizes


@settings(max_examples=400, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.integers(min_value=147, max_value=4096))
def test_detail_rules_hold_for_any_size(width: int, height: int, budget: int) -> None:
    low, auto, high = (
        RULES.plan(width, height, d, LLAMA4_PUBLISHED, budget) for d in (Detail.LOW, Detail.AUTO, Detail.HIGH)
    )
    assert low.tokens == 147
    assert low.tokens <= auto.tokens <= budget
    if high.tokens <= budget:
        assert auto == replace(high, detail_applied=Detail.AUTO)


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(0, 10, None, LLAMA4_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {"size": {"height": 336, "width": 336}, "max_patches": 16, "resize_to_max_canvas": False}
    assert Llama4Settings.from_config({**published, "patch_size": 14, "pixel_shuffle_ratio": 0.5}) == (
        LLAMA4_PUBLISHED
    )
    assert Llama4Settings.from_config({}) == LLAMA4_PUBLISHED
    assert LLAMA4_PUBLISHED.tile_tokens == 144


@pytest.mark.parametrize(
    "config",
    [
        {"size": {"height": 336, "width": 448}},
        {"max_patches": 0},
        {"pixel_shuffle_ratio": 0},
        {"pixel_shuffle_ratio": "half"},
        {"resize_to_max_canvas": "yes"},
    ],
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        Llama4Settings.from_config(config)
