"""Prompt messages to model inputs through the checkpoint's own chat template and processor.

The counts reported to the client come from here: `prompt_tokens` is the length of the input ids
the model consumes, and `image_tokens` the number of those ids that the processor inserted for
images (placeholders, tile markers, wrappers), found from the processor's replacement spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from loupe.domain import PreparedImage, PromptMessage, PromptStats, TextPart, nested_overrides
from loupe.engines.local.fast_images import resized
from loupe.engines.local.fast_processor import skips_pixels, without_pixels
from loupe.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class LocalPrompt:
    """Processor output for one request, kept on the CPU until the inference thread moves it.

    `pixels` is False where the images' pixel values were left out (see `build_prompt`)."""

    inputs: dict[str, torch.Tensor]
    stats: PromptStats
    pixels: bool = True


def to_conversation(messages: Sequence[PromptMessage]) -> list[dict[str, Any]]:
    """The structure HF chat templates iterate: content parts of type `image` and `text`."""
    conversation = []
    for message in messages:
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            else:
                parts.append({"type": "image"})
        conversation.append({"role": message.role.value, "content": parts})
    return conversation


def templated(processor: Any, messages: Sequence[PromptMessage]) -> str:
    return str(processor.apply_chat_template(to_conversation(messages), add_generation_prompt=True, tokenize=False))


def build_prompt(processor: Any, messages: Sequence[PromptMessage], pixels: bool = True) -> LocalPrompt:
    """The model inputs of these messages. With `pixels` False, where the processor can, the
    images are neither resized nor turned into pixel values (an engine that holds their
    embeddings does not need them): the prompt's ids, grids and counts are the same."""
    prepared = [p for m in messages for p in m.content if isinstance(p, PreparedImage)]
    pixels = pixels or not prepared or not skips_pixels(processor)
    images = [resized(p.pixels, (p.width, p.height)) if pixels else _stand_in(p) for p in prepared]
    try:
        with nullcontext() if pixels else without_pixels():
            out = processor(
                text=[templated(processor, messages)],
                images=[images] if prepared else None,
                # Without pixels, the image outputs are tensors already (the fast path's grids) and
                # the few token lists are converted below: the tokenizer's own conversion, of the
                # offsets too, costs more than the rest of a next turn's preparation.
                return_tensors="pt" if pixels else None,
                return_offsets_mapping=True,
                return_text_replacement_offsets=True,
                **_shared_overrides(prepared),
            )
    except ValueError as exc:
        raise InvalidRequest(f"the model's processor refused the prompt: {exc}") from None
    offsets = out.pop("offset_mapping")[0]
    replacements = out.pop("text_replacement_offsets", [[]])[0]
    spans = [r["new_span"] for r in replacements if r["type"] == "image"]
    if pixels:
        offsets = offsets.tolist()
        inputs = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    else:
        inputs = {k: v if isinstance(v, torch.Tensor) else torch.tensor(v) for k, v in out.items()}
    stats = PromptStats(
        prompt_tokens=int(inputs["input_ids"].shape[1]),
        image_tokens=_tokens_within(offsets, spans),
    )
    return LocalPrompt(inputs=inputs, stats=stats, pixels=pixels)


def count_prompt(processor: Any, messages: Sequence[PromptMessage]) -> PromptStats:
    """Exact prompt tokens without the image processor: the text around each image marker
    tokenized as the processor would, plus each image's planned tokens (planned or prepared)."""
    text = templated(processor, messages)
    marker = processor.image_token
    spans = []
    start = text.find(marker)
    while start >= 0:
        spans.append((start, start + len(marker)))
        start = text.find(marker, start + len(marker))
    offsets = processor.tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    text_tokens = len(offsets) - _tokens_within(offsets, spans)
    image_tokens = sum(p.tokens for m in messages for p in m.content if not isinstance(p, TextPart))
    return PromptStats(prompt_tokens=text_tokens + image_tokens, image_tokens=image_tokens)


def _stand_in(image: PreparedImage) -> torch.Tensor:
    """A [3, height, width] uint8 tensor of the image's planned size, no memory behind it."""
    return torch.zeros((3, 1, 1), dtype=torch.uint8).expand(3, image.height, image.width)


def _shared_overrides(images: Sequence[PreparedImage]) -> dict[str, Any]:
    """Per-image processor arguments; the HF processor takes one set per call."""
    distinct = {p.processor_overrides for p in images}
    if len(distinct) > 1:
        raise InvalidRequest(
            "this model cannot mix detail levels that need different processor settings in one "
            "request; use the same detail for every image",
            param="messages",
        )
    return nested_overrides(distinct.pop()) if distinct else {}


def _tokens_within(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> int:
    count = 0
    for start, end in offsets:
        if end > start and any(lo <= start and end <= hi for lo, hi in spans):
            count += 1
    return count
