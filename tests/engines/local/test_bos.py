"""The model gets one BOS, as the family's reference code feeds it: where the chat template writes
the BOS, the tokenizer's own is not added again (transformers' `apply_chat_template` and vLLM
tokenize a rendered chat so); where it does not (LLaVA-1.5), the tokenizer adds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.processor import load_processor
from loupe.engines.local.conversation import conversation as as_conversation
from loupe.engines.local.prompt import build_prompt, count_prompt
from loupe.models.tool_calls import HERMES
from tests.helpers import PHOTOS

# Families whose published tokenizer adds a BOS by itself; all but LLaVA's template writes one too.
FAMILIES = ["gemma3", "idefics3", "llava"]


def messages() -> list[PromptMessage]:
    with Image.open(PHOTOS / "extreme_ironing.jpg") as opened:
        pixels = opened.convert("RGB")
    image = PreparedImage(pixels, *pixels.size, *pixels.size, Detail.HIGH, "ironing")
    return [
        PromptMessage(Role.USER, (image, TextPart("What is this?"))),
        PromptMessage(Role.ASSISTANT, (TextPart("A man ironing."),)),
        PromptMessage(Role.USER, (TextPart("Why?"),)),
    ]


@pytest.mark.parametrize("family", FAMILIES)
def test_one_bos_as_the_reference_chat_tokenization(
    family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    processor = load_processor(str(tiny_checkpoint(family)))
    tokenizer = processor.tokenizer
    bos = tokenizer.bos_token_id
    assert tokenizer("Hi")["input_ids"][0] == bos  # the tokenizer adds one, as published
    chat = messages()
    prompt = build_prompt(processor, chat)
    ids = prompt.inputs["input_ids"][0].tolist()
    assert ids[0] == bos and ids[1] != bos
    image = chat[0].content[0]
    assert isinstance(image, PreparedImage)
    conversation, _ = as_conversation(processor, chat, (), HERMES)
    conversation[0]["content"][0]["image"] = image.pixels
    reference: Any = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    assert ids == list(reference["input_ids"][0])
    # The estimate's count (text tokenized around the image marker) agrees.
    planned = replace(image, tokens=prompt.stats.image_tokens)
    counted = [PromptMessage(Role.USER, (planned, chat[0].content[1])), *chat[1:]]
    assert count_prompt(processor, counted) == prompt.stats
