"""Gemma 3 plans against the real Gemma3Processor (PIL backend, tiny checkpoint's tokenizer):
every token of the expanded image text counted, and the fixed cost for every detail."""

from __future__ import annotations

from collections.abc import Callable
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
from loupe.models.gemma3 import GEMMA3_PUBLISHED, Gemma3Rules, Gemma3Settings
from tests.models.support import FAST, SIDES, changed_copy, sample_sizes

RULES = Gemma3Rules()
BUDGET = 1024

EDGE_SIZES = [
    (1, 1), (2, 1), (1, 2), (896, 896), (10000, 20), (20, 10000), (5000, 1), (1, 5000),
    (1920, 1080), (570, 380),
]  # fmt: skip

VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # (preprocessor_config changes, processor_config changes)
    "published": ({}, {}),
    "pan-and-scan asked for in the file": (
        {"do_pan_and_scan": True, "pan_and_scan_min_crop_size": 32},
        {},
    ),
    # The processor reads image_seq_length from processor_config.json only; Loupe's merged
    # configuration prefers preprocessor_config.json's copy, so a checkpoint keeps both equal.
    "64 tokens at 448": (
        {"size": {"height": 448, "width": 448}, "image_seq_length": 64},
        {"image_seq_length": 64},
    ),
}


@pytest.fixture(scope="module")
def variant(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Any, Gemma3Settings]]:
    """The processor and the counter's settings (newline pairs counted by the checkpoint's
    tokenizer, as the engine does) of a copy of the tiny checkpoint changed as the variant says."""

    def get(name: str) -> tuple[Any, Gemma3Settings]:
        parent = tmp_path_factory.mktemp("gemma3")
        copy, files = changed_copy(tiny_checkpoint("gemma3"), parent, VARIANTS[name])
        processor = load_processor(str(copy))
        newlines = len(processor.tokenizer("\n\n", add_special_tokens=False)["input_ids"])
        config = {**cfg.merged(*files), "double_newline_tokens": newlines}
        return processor, RULES.settings(config)

    return get


def processor_tokens(processor: Any, width: int, height: int) -> int:
    """Tokens within the text the processor put in for a blank image, wrappers and newlines
    included (as the engine counts them)."""
    out = processor(
        text=["Look:<start_of_image>Now."],
        images=[[Image.new("RGB", (width, height))]],
        return_offsets_mapping=True,
        return_text_replacement_offsets=True,
        **FAST,
    )
    (span,) = [r["new_span"] for r in out["text_replacement_offsets"][0]]
    return sum(1 for lo, hi in out["offset_mapping"][0] if hi > lo and span[0] <= lo and hi <= span[1])


@pytest.mark.parametrize("name", VARIANTS)
def test_plans_equal_the_processor_for_every_detail(
    name: str, variant: Callable[[str], tuple[Any, Gemma3Settings]]
) -> None:
    processor, settings_ = variant(name)
    mismatches = []
    for width, height in EDGE_SIZES + sample_sizes(seed=len(name), count=250):
        expected = processor_tokens(processor, width, height)
        for detail in (None, *Detail):
            plan = RULES.plan(width, height, detail, settings_, BUDGET)
            if plan.tokens != expected or plan.processor_overrides or plan.loupe_resizes:
                mismatches.append((width, height, detail))
    assert mismatches == []


def test_the_tiny_tokenizer_has_gemmas_newline_runs(variant: Callable[[str], tuple[Any, Gemma3Settings]]) -> None:
    processor, settings_ = variant("published")
    assert settings_.double_newline_tokens == 1
    assert settings_.tokens == GEMMA3_PUBLISHED.tokens == 256 + 2 + 2
    tokenizer = processor.tokenizer
    # A run of up to 31 newlines is one token, so the template's "\n" before an image merges with
    # the processor's "\n\n" (the prompt-level count is in tests/engines/local/test_image_edges.py).
    assert tokenizer.convert_ids_to_tokens(tokenizer("user\n\n\n", add_special_tokens=False)["input_ids"])[-1] == "\n\n\n"
    assert len(tokenizer("\n" * 31, add_special_tokens=False)["input_ids"]) == 1
    assert len(tokenizer("\n" * 32, add_special_tokens=False)["input_ids"]) == 2
    assert {"\n", "\n\n", "\n\n\n", "\n\n\n\n"} <= set(tokenizer.get_vocab())  # vLLM looks these up


def test_the_soft_tokens_are_the_processors_own_count(
    variant: Callable[[str], tuple[Any, Gemma3Settings]],
) -> None:
    processor, settings_ = variant("published")
    counted = processor._get_num_multimodal_tokens([(380, 570)])["num_image_tokens"][0]
    assert counted == settings_.image_seq_length == 256


@settings(max_examples=200, deadline=None, derandomize=True)
@given(SIDES, SIDES, st.sampled_from([None, *Detail]), st.integers(min_value=1, max_value=4096))
def test_every_image_and_detail_costs_the_same(
    width: int, height: int, detail: Detail | None, budget: int
) -> None:
    plan = RULES.plan(width, height, detail, GEMMA3_PUBLISHED, budget)
    assert (plan.tokens, plan.resized_width, plan.resized_height) == (260, 896, 896)
    assert plan.detail_applied is (detail or Detail.HIGH)


def test_empty_image_is_refused() -> None:
    with pytest.raises(InvalidImageSize):
        RULES.plan(0, 0, None, GEMMA3_PUBLISHED, BUDGET)


def test_settings_read_like_the_processor_reads_them() -> None:
    published = {"size": {"height": 896, "width": 896}, "image_seq_length": 256}
    assert Gemma3Settings.from_config(published) == GEMMA3_PUBLISHED
    assert Gemma3Settings.from_config({}) == Gemma3Settings(height=224, width=224)


@pytest.mark.parametrize(
    "config", [{"image_seq_length": 0}, {"size": {"height": 896}}, {"double_newline_tokens": 3}]
)
def test_bad_settings_fail_at_load(config: dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError):
        Gemma3Settings.from_config(config)
