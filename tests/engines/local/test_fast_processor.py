"""The engine's processor takes the fast image path and still produces the HF processor's inputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local import fast_images
from loupe.engines.local.fast_processor import _FastImages
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.local.prompt import build_prompt
from tests.helpers import PHOTOS


def messages(image: Image.Image, overrides: tuple[tuple[str, bool | int], ...] = ()) -> list[PromptMessage]:
    prepared = PreparedImage(
        pixels=image, width=image.width, height=image.height, original_width=image.width,
        original_height=image.height, detail=Detail.HIGH, content_hash="x", processor_overrides=overrides,
    )
    return [PromptMessage(Role.USER, (prepared, TextPart("What is it?")))]


@pytest.mark.parametrize(
    ("family", "size", "overrides"),
    [
        ("qwen2-vl", (448, 448), ()),
        ("qwen2-vl", (1036, 756), ()),
        ("smolvlm", None, ()),
        ("smolvlm", None, (("do_image_splitting", False),)),
        ("smolvlm", None, (("size.longest_edge", 1024),)),
    ],
)
def test_fast_and_plain_processors_give_the_same_inputs(
    family: str, size: tuple[int, int] | None, overrides: tuple[tuple[str, bool | int], ...],
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    with Image.open(PHOTOS / "boats.jpg") as img:
        photo = img.convert("RGB")
    if size is not None:
        photo = photo.resize(size, Image.Resampling.BICUBIC)
    fast = read_checkpoint(str(tiny_checkpoint(family)))
    plain = read_checkpoint(str(tiny_checkpoint(family)), fast=False)
    assert isinstance(fast.processor, _FastImages) and not isinstance(plain.processor, _FastImages)
    quick, slow = build_prompt(fast.processor, messages(photo, overrides)), build_prompt(plain.processor, messages(photo, overrides))
    assert quick.stats == slow.stats
    assert quick.inputs.keys() == slow.inputs.keys()
    for name, tensor in slow.inputs.items():
        assert torch.equal(quick.inputs[name], tensor), name


def test_families_without_a_fast_path_keep_their_processor(tiny_checkpoint: Callable[[str], Path]) -> None:
    assert "llava" not in fast_images.FAMILIES
    assert not isinstance(read_checkpoint(str(tiny_checkpoint("llava"))).processor, _FastImages)


def test_an_image_not_sized_by_the_planner_falls_back_to_the_hf_processor(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    odd = Image.new("RGB", (64, 64), "red")  # not a multiple of 28: the planner would have resized it
    fast = read_checkpoint(str(tiny_checkpoint("qwen2-vl")))
    plain = read_checkpoint(str(tiny_checkpoint("qwen2-vl")), fast=False)
    quick, slow = build_prompt(fast.processor, messages(odd)), build_prompt(plain.processor, messages(odd))
    assert quick.stats == slow.stats
    assert torch.equal(quick.inputs["pixel_values"], slow.inputs["pixel_values"])
