"""A client's text never becomes control tokens: forged turn markers and image placeholders are text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loupe.domain import Detail, PlannedImage, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.local.control_text import JOINERS, ControlText, control_text, neutral_messages
from loupe.engines.local.loader import read_checkpoint
from loupe.engines.local.prompt import build_prompt, count_prompt
from loupe.testing.tiny import FAMILIES


def control_strings(processor: Any) -> list[str]:
    """Every special token of the tokenizer and every marker the processor names."""
    tokenizer = processor.tokenizer
    strings = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    strings |= {getattr(processor, n) for n in dir(processor) if n.endswith("_token") and isinstance(getattr(processor, n, None), str)}
    return sorted(strings)


def conversation(image: PreparedImage | PlannedImage, text: str) -> list[PromptMessage]:
    """System, user (an image and text), assistant and user turns, each holding `text`."""
    return [
        PromptMessage(Role.SYSTEM, (TextPart(f"Be brief. {text}"),)),
        PromptMessage(Role.USER, (image, TextPart(f"What is it? {text}"))),
        PromptMessage(Role.ASSISTANT, (TextPart(f"A red square. {text}"),)),
        PromptMessage(Role.USER, (TextPart(f"{text} And now?"),)),
    ]


def red(size: int = 448) -> PreparedImage:
    return PreparedImage(
        pixels=Image.new("RGB", (size, size), "red"), width=size, height=size, original_width=size,
        original_height=size, detail=Detail.HIGH, content_hash="red",
    )


def control_ids(processor: Any, ids: list[int]) -> Counter[int]:
    special = {i for i, t in processor.tokenizer.added_tokens_decoder.items() if t.special}
    return Counter(i for i in ids if i in special)


@pytest.mark.parametrize("family", FAMILIES)
def test_forged_markers_arrive_as_text_on_every_family(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    checkpoint = str(tiny_checkpoint(family))
    processor = read_checkpoint(checkpoint).processor
    forged = " ".join(control_strings(processor))
    assert len(forged) > 20, forged
    plain, attack = conversation(red(), "Thanks."), conversation(red(), forged)
    honest, built = build_prompt(processor, plain), build_prompt(processor, attack)
    ids = built.inputs["input_ids"][0].tolist()
    # The same control tokens as an honest conversation of the same shape: the template's and the image's.
    assert control_ids(processor, ids) == control_ids(processor, honest.inputs["input_ids"][0].tolist())
    assert built.stats.image_tokens == honest.stats.image_tokens
    decoded = processor.tokenizer.decode(ids).replace(JOINERS[0], "")
    assert decoded.count(forged) == 4  # every forged string is in the prompt, as the client wrote it
    # The processor's own call (the fast path's reference) and the estimate count the same ids.
    reference = build_prompt(read_checkpoint(checkpoint, fast=False).processor, attack)
    assert reference.inputs["input_ids"].tolist() == built.inputs["input_ids"].tolist()
    assert reference.stats == built.stats
    if built.pixels:
        lean = build_prompt(processor, attack, pixels=False)
        assert lean.inputs["input_ids"].tolist() == built.inputs["input_ids"].tolist()
    planned = PlannedImage(0, 448, 448, None, Detail.HIGH, 448, 448, tokens=built.stats.image_tokens)
    assert count_prompt(processor, conversation(planned, forged)) == built.stats


@pytest.mark.parametrize("family", ["qwen2-vl", "gemma3"])
def test_ordinary_text_is_left_as_it_was(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    processor = read_checkpoint(str(tiny_checkpoint(family))).processor
    messages = conversation(red(), "Count <b>3</b> < 4 > 2, <|not a token|> and <start_of_turn (sic).")
    assert all(a is b for a, b in zip(neutral_messages(processor, messages), messages, strict=True))


def test_each_string_is_broken_after_its_first_character_longest_first() -> None:
    control = ControlText.of(["<|a|>", "<|ab|>", "|<|a|>", "x"])  # one character cannot be broken
    assert control.neutral("<|ab|><|a|>") == "<\u2060|ab|><\u2060|a|>"
    assert control.neutral("|<|a|>") == "|\u2060<\u2060|a|>"  # what follows a break is checked again
    assert control.neutral("x plain") == "x plain"
    assert ControlText.of([]).neutral("<|a|>") == "<|a|>"


def test_another_separator_is_used_where_the_tokenizer_drops_the_joiner(tiny_checkpoint: Callable[[str], Path]) -> None:
    from tokenizers import AddedToken, normalizers

    processor = read_checkpoint(str(tiny_checkpoint("qwen2-vl")), fast=False).processor
    backend = processor.tokenizer.backend_tokenizer
    # A special token matched after normalisation, by a normaliser that removes the joiner.
    backend.normalizer = normalizers.Replace("\u2060", "")
    backend.add_special_tokens([AddedToken("<|im_end|>", special=True, normalized=True)])
    assert processor.tokenizer("<\u2060|im_end|>", add_special_tokens=False)["input_ids"] == [2]
    control = control_text(processor)
    assert control.joiner == JOINERS[1]
    ids = processor.tokenizer(control.neutral("<|im_end|>"), add_special_tokens=False)["input_ids"]
    assert not control_ids(processor, ids)
