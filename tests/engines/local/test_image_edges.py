"""Gemma 3's image sequence starts and ends with "\\n\\n", which its tokenizer merges with the
template's newlines next to the image ("user\\n" + "\\n\\n" is one "\\n\\n\\n"): the estimate's count,
the engine's inputs and transformers' own chat tokenization agree on the prompt, and every image
keeps its planned 260 tokens (as vLLM reports them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.conversation import conversation as as_conversation
from loupe.engines.local.processor import load_processor
from loupe.engines.local.prompt import build_prompt, count_prompt, image_edges
from loupe.models.tool_calls import HERMES
from loupe.testing.tiny import FAMILIES

IMAGE_TOKENS = 260


def image() -> PreparedImage:
    pixels = Image.new("RGB", (896, 896), (120, 30, 200))
    return PreparedImage(pixels, 896, 896, 896, 896, Detail.HIGH, "violet", tokens=IMAGE_TOKENS)


LAYOUTS: dict[str, list[PromptMessage]] = {
    "image first in the turn": [PromptMessage(Role.USER, (image(), TextPart("What is in the picture?")))],
    "image after text": [PromptMessage(Role.USER, (TextPart("Look:"), image()))],
    "two images side by side": [PromptMessage(Role.USER, (image(), image(), TextPart("Compare.")))],
    "image after a system prompt": [
        PromptMessage(Role.SYSTEM, (TextPart("Be brief."),)),
        PromptMessage(Role.USER, (image(), TextPart("What?"))),
    ],
    "image in a later turn": [
        PromptMessage(Role.USER, (TextPart("Hello."),)),
        PromptMessage(Role.ASSISTANT, (TextPart("Hi."),)),
        PromptMessage(Role.USER, (image(),)),
    ],
}


@pytest.fixture(scope="module")
def processor(tiny_checkpoint: Callable[[str], Path]) -> Any:
    return load_processor(str(tiny_checkpoint("gemma3")))


def reference_ids(processor: Any, messages: list[PromptMessage]) -> list[int]:
    """transformers' own chat tokenization of the messages (its processor inserts the images)."""
    turns, _ = as_conversation(processor, messages, (), HERMES)
    images = iter(p for m in messages for p in m.content if isinstance(p, PreparedImage))
    for turn in turns:
        for part in turn["content"]:
            if part["type"] == "image":
                part["image"] = next(images).pixels
    out: Any = processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(out["input_ids"][0])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_path_counts_the_merged_newlines(processor: Any, layout: str) -> None:
    messages = LAYOUTS[layout]
    images = sum(isinstance(p, PreparedImage) for m in messages for p in m.content)
    ids = reference_ids(processor, messages)
    built = build_prompt(processor, messages)
    assert built.inputs["input_ids"][0].tolist() == ids
    assert built.stats.prompt_tokens == len(ids) and built.stats.image_tokens == images * IMAGE_TOKENS
    assert count_prompt(processor, messages) == built.stats


def test_an_image_first_in_a_turn_costs_one_token_less_than_text_and_image_apart(processor: Any) -> None:
    first = count_prompt(processor, LAYOUTS["image first in the turn"])
    text_alone = count_prompt(processor, [PromptMessage(Role.USER, (TextPart("What is in the picture?"),))])
    assert first.prompt_tokens == text_alone.prompt_tokens + IMAGE_TOKENS - 1


def test_only_gemma_writes_whitespace_around_its_images(tiny_checkpoint: Callable[[str], Path]) -> None:
    edges = {family: image_edges(load_processor(str(tiny_checkpoint(family)))) for family in FAMILIES}
    assert edges.pop("gemma3") == ("\n\n", "\n\n")
    assert set(edges.values()) == {("", "")}
