"""Mistral 3's fast image path gives the PIL image processor's tensors exactly, and the same
prompt through the engine's processor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local import fast_images
from loupe.engines.local.fast_processor import with_fast_images
from loupe.engines.local.processor import load_processor
from loupe.engines.local.prompt import build_prompt
from loupe.models import counter_for
from tests.helpers import PHOTOS

PHOTO_NAMES = ["boats.jpg", "bus.jpg", "extreme_ironing.jpg", "llava_example_cmp.png"]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("mistral3")


def planned(checkpoint: Path, name: str, detail: Detail) -> PreparedImage:
    configs = (json.loads((checkpoint / f"{f}_config.json").read_text()) for f in ("preprocessor", "processor"))
    with Image.open(PHOTOS / name) as opened:
        pixels = opened.convert("RGB")
    plan = counter_for("mistral3", *configs).plan(*pixels.size, detail)
    size = (plan.resized_width, plan.resized_height, *pixels.size)
    return PreparedImage(pixels, *size, detail, name, plan.tokens)


@pytest.mark.parametrize("detail", [Detail.HIGH, Detail.LOW, Detail.AUTO])
def test_pixels_equal_the_image_processor(checkpoint: Path, detail: Detail) -> None:
    processor = load_processor(str(checkpoint))
    images = [planned(checkpoint, name, detail) for name in PHOTO_NAMES]
    sized = [fast_images.resized(i.pixels, (i.width, i.height)) for i in images]
    settings = fast_images.settings_for("mistral3", processor.image_processor, None, 28)
    ours = fast_images.preprocess(sized, settings)
    theirs = processor.image_processor(sized, patch_size=28, return_tensors="pt")
    assert ours["pixel_values"].dtype == theirs["pixel_values"].dtype == torch.float32
    assert torch.equal(ours["pixel_values"], theirs["pixel_values"])
    assert ours["image_sizes"].tolist() == theirs["image_sizes"].tolist()


def test_a_prompt_is_the_same_through_the_fast_path(checkpoint: Path) -> None:
    plain, fast = load_processor(str(checkpoint)), with_fast_images(load_processor(str(checkpoint)), "mistral3")
    images = (planned(checkpoint, "bus.jpg", Detail.HIGH), planned(checkpoint, "boats.jpg", Detail.LOW))
    messages = [PromptMessage(Role.USER, (*images, TextPart("Compare.")))]
    a, b = build_prompt(plain, messages), build_prompt(fast, messages)
    assert a.stats == b.stats and a.stats.image_tokens == sum(i.tokens for i in images)
    assert a.inputs.keys() == b.inputs.keys()
    assert all(torch.equal(a.inputs[k], b.inputs[k]) for k in a.inputs)


def test_an_image_not_at_whole_patches_goes_through_the_processor(checkpoint: Path) -> None:
    fast = with_fast_images(load_processor(str(checkpoint)), "mistral3")
    settings = fast_images.settings_for("mistral3", fast.image_processor, None, 28)
    with pytest.raises(ValueError):
        fast_images.preprocess([Image.new("RGB", (30, 28))], settings)
    out = fast(text=["[IMG]"], images=[Image.new("RGB", (30, 28))], return_tensors="pt")
    assert out["image_sizes"].tolist() == [[28, 56]]  # the processor sized it
