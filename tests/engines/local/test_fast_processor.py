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
    ("family", "size", "overrides", "exact"),
    [
        ("qwen2-vl", (448, 448), (), True),
        ("qwen2-vl", (1036, 756), (), True),
        # SmolVLM: exact from an image at its canvas size, which the processor leaves as it is;
        # from any other size the fast path resizes once where the processor resizes twice.
        ("smolvlm", (2048, 1536), (), True),
        ("smolvlm", (1024, 1024), (("size.longest_edge", 1024),), True),
        ("smolvlm", None, (), False),
        ("smolvlm", None, (("do_image_splitting", False),), False),
    ],
)
def test_fast_and_plain_processors_give_the_same_inputs(
    family: str, size: tuple[int, int] | None, overrides: tuple[tuple[str, bool | int], ...], exact: bool,
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
        assert quick.inputs[name].dtype == tensor.dtype, name
        if exact or not tensor.is_floating_point():
            assert torch.equal(quick.inputs[name], tensor), name
        else:
            assert quick.inputs[name].shape == tensor.shape
            assert (quick.inputs[name] - tensor).abs().mean().item() < 0.03, name


def test_the_engine_resizes_a_planned_image_with_torch_to_the_same_inputs(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    with Image.open(PHOTOS / "boats.jpg") as img:
        photo = img.convert("RGB")
    planned = PreparedImage(
        pixels=photo, width=448, height=252, original_width=photo.width, original_height=photo.height,
        detail=Detail.LOW, content_hash="x",
    )
    fast = read_checkpoint(str(tiny_checkpoint("qwen2-vl")))
    quick = build_prompt(fast.processor, [PromptMessage(Role.USER, (planned, TextPart("What is it?")))])
    as_tensor = fast_images.resized(photo, (448, 252))
    assert isinstance(as_tensor, torch.Tensor)
    expected = fast_images.preprocess([as_tensor], fast_images.settings_for("qwen2-vl", fast.processor.image_processor))
    assert torch.equal(quick.inputs["pixel_values"], expected["pixel_values"])
    assert quick.inputs["image_grid_thw"].tolist() == [[1, 18, 32]]


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


@pytest.mark.parametrize("family", sorted(fast_images.FAMILIES))
def test_a_prompt_without_pixels_has_the_same_ids_and_counts(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    with Image.open(PHOTOS / "boats.jpg") as img:
        photo = img.convert("RGB").resize((896, 448), Image.Resampling.BICUBIC)  # whole tokens in every family
    processor = read_checkpoint(str(tiny_checkpoint(family))).processor
    plain = read_checkpoint(str(tiny_checkpoint(family)), fast=False).processor  # the HF processor's call
    full, lean = build_prompt(plain, messages(photo)), build_prompt(processor, messages(photo), pixels=False)
    assert full.pixels and "pixel_values" in full.inputs
    assert lean.stats == full.stats
    if family not in fast_images.QWEN_LAYOUT:  # tiles' placeholders need the pixels: computed anyway
        assert lean.pixels and lean.inputs.keys() == full.inputs.keys()
        return
    assert not lean.pixels and lean.inputs.keys() == full.inputs.keys() - {"pixel_values"}
    for name, tensor in lean.inputs.items():
        assert tensor.dtype == full.inputs[name].dtype and torch.equal(tensor, full.inputs[name]), name


@pytest.mark.parametrize("family", sorted(fast_images.QWEN_LAYOUT))
def test_a_conversation_without_pixels_has_the_same_ids_and_counts(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    """Several images of different sizes, text around them, earlier turns: every marker expands."""
    with Image.open(PHOTOS / "boats.jpg") as img:
        wide, tall = img.convert("RGB").resize((896, 448)), img.convert("RGB").resize((224, 672))
    processor = read_checkpoint(str(tiny_checkpoint(family))).processor
    plain = read_checkpoint(str(tiny_checkpoint(family)), fast=False).processor  # the HF processor's call
    conversation = [
        *messages(wide),
        PromptMessage(Role.ASSISTANT, (TextPart("Boats 346, and 12 more."),)),
        PromptMessage(Role.USER, (TextPart("Compare"), *messages(tall)[0].content, *messages(wide)[0].content[:1])),
    ]
    full, lean = build_prompt(plain, conversation), build_prompt(processor, conversation, pixels=False)
    quick = build_prompt(processor, conversation)
    assert not lean.pixels and lean.stats == full.stats == quick.stats and full.stats.image_tokens > 0
    assert quick.inputs.keys() == full.inputs.keys() == lean.inputs.keys() | {"pixel_values"}
    for name, tensor in full.inputs.items():
        assert quick.inputs[name].dtype == tensor.dtype and torch.equal(quick.inputs[name], tensor), name
        assert name == "pixel_values" or torch.equal(lean.inputs[name], tensor), name


def test_a_prompt_without_pixels_of_an_image_not_sized_by_the_planner_gets_them(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    odd = Image.new("RGB", (64, 64), "red")  # the processor resizes it: only its call knows the grid
    processor = read_checkpoint(str(tiny_checkpoint("qwen2-vl"))).processor
    full, lean = build_prompt(processor, messages(odd)), build_prompt(processor, messages(odd), pixels=False)
    assert lean.pixels and lean.stats == full.stats
    assert torch.equal(lean.inputs["input_ids"], full.inputs["input_ids"])


def test_a_typed_image_marker_is_text_on_every_path(tiny_checkpoint: Callable[[str], Path]) -> None:
    photo = Image.new("RGB", (448, 448), "red")
    checkpoint = str(tiny_checkpoint("qwen2-vl"))
    processor, plain = read_checkpoint(checkpoint).processor, read_checkpoint(checkpoint, fast=False).processor
    typed = [PromptMessage(Role.USER, (*messages(photo)[0].content, TextPart(f"and {processor.image_token}?")))]
    one = [PromptMessage(Role.USER, messages(photo)[0].content)]
    built = [build_prompt(processor, typed), build_prompt(processor, typed, pixels=False), build_prompt(plain, typed)]
    assert built[0].stats.image_tokens == build_prompt(processor, one).stats.image_tokens  # one image's
    for other in built[1:]:
        assert other.stats == built[0].stats
        assert torch.equal(other.inputs["input_ids"], built[0].inputs["input_ids"])


@pytest.mark.parametrize("family", sorted(fast_images.QWEN_LAYOUT))
def test_a_prompt_without_images_has_the_processors_inputs(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    fast = read_checkpoint(str(tiny_checkpoint(family)))
    plain = read_checkpoint(str(tiny_checkpoint(family)), fast=False)
    text_only = [PromptMessage(Role.USER, (TextPart("Count to 346, then stop."),))]
    quick, slow = build_prompt(fast.processor, text_only), build_prompt(plain.processor, text_only)
    assert quick.stats == slow.stats and quick.stats.image_tokens == 0
    assert quick.inputs.keys() == slow.inputs.keys()
    for name, tensor in slow.inputs.items():
        assert quick.inputs[name].dtype == tensor.dtype and torch.equal(quick.inputs[name], tensor), name
