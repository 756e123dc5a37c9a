"""Tiny LLaVA-1.5, LLaVA-OneVision, Gemma 3 and InternVL checkpoints: they load, prompt a real
photo through the engine's prompt builder, generate, and count images as the counters plan."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from transformers import AutoTokenizer

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.loader import load_model
from loupe.engines.local.prompt import build_prompt
from loupe.models.gemma3 import Gemma3Rules
from loupe.models.internvl import InternVLRules
from loupe.models.llava import LlavaRules
from loupe.models.llava_onevision import OnevisionRules
from loupe.testing.tiny import FAMILIES
from tests.helpers import PHOTOS
from tests.testing.support import USER_IMAGE_TURN, planned_tokens, read_json

PHOTO = PHOTOS / "extreme_ironing.jpg"
RULES: dict[str, Any] = {
    "llava": LlavaRules(),
    "llava-onevision": OnevisionRules(),
    "gemma3": Gemma3Rules(),
    "internvl": InternVLRules(),
}
# 570 x 380 at detail high: 576 fixed; anyres 2 x 1 tiles unpadded; 256 + wrappers + 2 newline
# pairs (one token each, as Gemma's tokenizer has them); 3 x 2 tiles + thumbnail, wrapped.
PHOTO_TOKENS = {"llava": 576, "llava-onevision": 1836, "gemma3": 260, "internvl": 1794}


def test_the_families_are_registered() -> None:
    assert set(RULES) <= set(FAMILIES)


def prepared(path: Path) -> PreparedImage:
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    return PreparedImage(rgb, rgb.width, rgb.height, rgb.width, rgb.height, Detail.HIGH, "photo")


@pytest.mark.parametrize("family", RULES)
def test_a_photo_goes_through_the_engine_and_counts_as_planned(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    path = tiny_checkpoint(family)
    loaded = load_model(str(path), device="cpu")
    image = prepared(PHOTO)
    message = PromptMessage(Role.USER, (image, TextPart("Describe this image.")))
    prompt = build_prompt(loaded.processor, [message])
    tokenizer = AutoTokenizer.from_pretrained(path)
    planned = planned_tokens(RULES[family], path, tokenizer, image.width, image.height)
    assert prompt.stats.image_tokens == planned == PHOTO_TOKENS[family]
    out = loaded.model.generate(**prompt.inputs, max_new_tokens=3, do_sample=False)
    assert prompt.stats.prompt_tokens < out.shape[1] <= prompt.stats.prompt_tokens + 3


def render(path: Path, chat: list[dict[str, Any]], generate: bool = True) -> str:
    tokenizer = AutoTokenizer.from_pretrained(path)
    text: str = tokenizer.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=generate
    )
    return text


def test_llava_template_and_bos_match_the_published_format(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    path = tiny_checkpoint("llava")
    chat = [
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, {"type": "image"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A man ironing."}]},
        {"role": "user", "content": "Why?"},
    ]
    assert render(path, chat) == (
        "USER: <image>\nWhat is this? ASSISTANT: A man ironing. USER: Why? ASSISTANT:"
    )
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.convert_ids_to_tokens(tokenizer("Hi")["input_ids"])[0] == "<s>"


def test_onevision_template_matches_the_published_format(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    chat = [
        *USER_IMAGE_TURN,
        {"role": "assistant", "content": [{"type": "text", "text": "A man ironing."}]},
    ]
    assert render(tiny_checkpoint("llava-onevision"), chat) == (
        "<|im_start|>user <image>\nWhat is this?<|im_end|>"
        "<|im_start|>assistant \nA man ironing.<|im_end|><|im_start|>assistant\n"
    )


def test_gemma3_template_matches_the_published_format(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    path = tiny_checkpoint("gemma3")
    chat = [
        {"role": "system", "content": "Be brief."},
        *USER_IMAGE_TURN,
        {"role": "assistant", "content": [{"type": "text", "text": " A man ironing. "}]},
    ]
    assert render(path, chat) == (
        "<bos><start_of_turn>user\nBe brief.\n\n<start_of_image>What is this?<end_of_turn>\n"
        "<start_of_turn>model\nA man ironing.<end_of_turn>\n<start_of_turn>model\n"
    )
    with pytest.raises(Exception, match="alternate"):
        render(path, [*USER_IMAGE_TURN, *USER_IMAGE_TURN])


def test_internvl_template_matches_the_published_format(
    tiny_checkpoint: Callable[[str], Path],
) -> None:
    chat = [{"role": "system", "content": "Be brief."}, *USER_IMAGE_TURN]
    assert render(tiny_checkpoint("internvl"), chat) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n<IMG_CONTEXT>\nWhat is this?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    ("family", "tile", "patch"),
    [("llava", 336, 14), ("llava-onevision", 384, 14), ("gemma3", 896, 14), ("internvl", 448, 14)],
)
def test_vision_towers_have_the_published_geometry(
    family: str, tile: int, patch: int, tiny_checkpoint: Callable[[str], Path]
) -> None:
    vision = read_json(tiny_checkpoint(family) / "config.json")["vision_config"]
    geometry = (vision["image_size"], vision["patch_size"])
    assert geometry in ((tile, patch), ([tile, tile], [patch, patch]))
