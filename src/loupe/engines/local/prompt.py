"""Prompt messages to model inputs through the checkpoint's own chat template and processor.

The counts reported to the client come from here: `prompt_tokens` is the length of the input ids
the model consumes, and `image_tokens` the number of those ids that the processor inserted for
images (placeholders, tile markers, wrappers), found from the processor's replacement spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from loupe.domain import PreparedImage, PromptMessage, PromptStats, TextPart
from loupe.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class LocalPrompt:
    """Processor output for one request, kept on the CPU until the inference thread moves it."""

    inputs: dict[str, torch.Tensor]
    stats: PromptStats


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


def build_prompt(processor: Any, messages: Sequence[PromptMessage]) -> LocalPrompt:
    text = processor.apply_chat_template(
        to_conversation(messages), add_generation_prompt=True, tokenize=False
    )
    images = [p.pixels for m in messages for p in m.content if isinstance(p, PreparedImage)]
    try:
        out = processor(
            text=[text],
            images=[images] if images else None,
            return_tensors="pt",
            return_offsets_mapping=True,
            return_text_replacement_offsets=True,
        )
    except ValueError as exc:
        raise InvalidRequest(f"the model's processor refused the prompt: {exc}") from None
    offsets = out.pop("offset_mapping")[0].tolist()
    replacements = out.pop("text_replacement_offsets", [[]])[0]
    spans = [r["new_span"] for r in replacements if r["type"] == "image"]
    inputs = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    stats = PromptStats(
        prompt_tokens=int(inputs["input_ids"].shape[1]),
        image_tokens=_tokens_within(offsets, spans),
    )
    return LocalPrompt(inputs=inputs, stats=stats)


def _tokens_within(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> int:
    count = 0
    for start, end in offsets:
        if end > start and any(lo <= start and end <= hi for lo, hi in spans):
            count += 1
    return count
