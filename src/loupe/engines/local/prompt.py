"""Prompt messages to model inputs through the checkpoint's own chat template and processor.

The counts reported to the client come from here: `prompt_tokens` is the length of the input ids
the model consumes, and `image_tokens` the number of those ids that the processor inserted for
images (placeholders, tile markers, wrappers), found from the processor's replacement spans: an
id that holds any character the processor inserted counts for that image. Gemma 3's tokenizer
merges the "\n" its template writes before an image with the "\n\n" the processor puts there into
one "\n\n\n": the prompt is one id shorter and the image keeps its 260, as vLLM counts it too.
`video_tokens` likewise for videos (their placeholders and the timestamps or frame captions the
processor writes between frames).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from loupe.domain import (
    PlannedImage,
    PlannedVideo,
    PreparedImage,
    PreparedVideo,
    PromptMessage,
    PromptStats,
    ToolSpec,
    nested_overrides,
)
from loupe.engines.local.control_text import neutral_messages, neutral_tools
from loupe.engines.local.conversation import conversation
from loupe.engines.local.fast_images import resized
from loupe.engines.local.fast_processor import placeholder_inputs, skips_pixels
from loupe.engines.local.video_processor import metadata_of, stand_in
from loupe.errors import InvalidRequest, VideoCombinationNotSupported
from loupe.models.video_catalog import WITH_IMAGES
from loupe.models.tool_calls import HERMES, ToolCallFormat


@dataclass(frozen=True, slots=True)
class LocalPrompt:
    """Processor output for one request, kept on the CPU until the inference thread moves it.

    `pixels` is False where pixel values of images or videos were left out (see `build_prompt`);
    it stays as built once a prefilled prompt lets go of everything but its token ids."""

    inputs: dict[str, torch.Tensor]
    stats: PromptStats
    pixels: bool = True


def templated(
    processor: Any, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = (), fmt: ToolCallFormat = HERMES
) -> str:
    """The prompt text through the checkpoint's chat template (tools in the family's format `fmt`,
    see conversation), with the control strings a client wrote broken (see control_text)."""
    turns, extra = conversation(processor, neutral_messages(processor, messages), neutral_tools(processor, tools), fmt)
    return str(processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False, **extra))


def chat_text_kwargs(processor: Any, text: str) -> dict[str, Any]:
    """Tokenizer arguments for a rendered chat, as the family's reference code tokenizes it.

    transformers' `apply_chat_template(tokenize=True)` (and vLLM's chat path) adds no special
    tokens to a rendered chat that starts with the BOS: the template wrote it. The published
    Gemma 3, Idefics3, Llama 4 and Mistral 3 tokenizers add a BOS of their own, so tokenizing
    the text as is would feed the model two.
    """
    bos = processor.tokenizer.bos_token
    return {"add_special_tokens": False} if bos is not None and text.startswith(bos) else {}


def build_prompt(
    processor: Any,
    messages: Sequence[PromptMessage],
    pixels: bool = True,
    tools: Sequence[ToolSpec] = (),
    fmt: ToolCallFormat = HERMES,
) -> LocalPrompt:
    """The model inputs of these messages. With `pixels` False, where the processor can, the
    images and videos are neither resized nor turned into pixel values (an engine that holds
    their embeddings does not need them): the prompt's ids, grids and counts are the same."""
    prepared = [p for m in messages for p in m.content if isinstance(p, PreparedImage)]
    videos = [p for m in messages for p in m.content if isinstance(p, PreparedVideo)]
    if prepared and videos and processor.video_processor.family not in WITH_IMAGES:
        # SmolVLM's video frames would take the images' `pixel_values`; GLM-4V's model cannot
        # tell its video frames from images (the chat service refuses these before decoding).
        raise VideoCombinationNotSupported("this model takes images or videos in one request, not both", param="messages")
    overrides = _shared_overrides(prepared)
    text = templated(processor, messages, tools, fmt)
    skips = skips_pixels(processor)
    try:
        built = None
        if skips and not overrides and not videos:
            built = _placeholders(processor, text, prepared, pixels)
        if built is None:
            pixels = pixels or not skips or not videos  # only the Qwen layouts encode videos from grids alone
            built = _processed(processor, text, prepared, videos, overrides, pixels)
    except ValueError as exc:
        raise InvalidRequest(f"the model's processor refused the prompt: {exc}") from None
    inputs, stats = built
    return LocalPrompt(inputs=inputs, stats=stats, pixels=pixels or not (prepared or videos))


def _processed(
    processor: Any,
    text: str,
    prepared: list[PreparedImage],
    videos: list[PreparedVideo],
    overrides: dict[str, Any],
    pixels: bool = True,
) -> tuple[dict[str, torch.Tensor], PromptStats]:
    """Through the processor's call, image pixels included (video pixels unless `pixels` is False)."""
    media: dict[str, Any] = {}
    if prepared:
        media["images"] = [[resized(p.pixels, (p.width, p.height)) for p in prepared]]
    if videos:
        media["videos"] = [v.pixels if pixels else stand_in(v.frames) for v in videos]
        media["video_metadata"] = [metadata_of(v.frames) for v in videos]
    out = processor(
        text=[text],
        return_tensors="pt",
        return_offsets_mapping=True,
        return_text_replacement_offsets=True,
        **media,
        **chat_text_kwargs(processor, text),
        **overrides,
    )
    offsets = out.pop("offset_mapping")[0].tolist()
    replacements = out.pop("text_replacement_offsets", [[]])[0]
    inputs = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    stats = PromptStats(
        prompt_tokens=int(inputs["input_ids"].shape[1]),
        image_tokens=_tokens_touching(offsets, _spans(replacements, "image")),
        video_tokens=_tokens_within(offsets, _spans(replacements, "video")),
    )
    return inputs, stats


def _spans(replacements: Sequence[dict[str, Any]], kind: str) -> list[int]:
    return [at for r in replacements if r["type"] == kind for at in r["new_span"]]


def _placeholders(
    processor: Any, text: str, prepared: list[PreparedImage], pixels: bool
) -> tuple[dict[str, torch.Tensor], PromptStats] | None:
    """The same inputs without the processor's call (see placeholder_inputs), pixels optional."""
    images = [resized(p.pixels, (p.width, p.height)) if pixels else _stand_in(p) for p in prepared]
    built = placeholder_inputs(processor, text, images, pixels, chat_text_kwargs(processor, text))
    if built is None:
        return None
    out, image_tokens = built
    inputs = {k: v if isinstance(v, torch.Tensor) else torch.tensor([v]) for k, v in out.items()}
    return inputs, PromptStats(prompt_tokens=int(inputs["input_ids"].shape[1]), image_tokens=image_tokens)


def count_prompt(
    processor: Any, messages: Sequence[PromptMessage], tools: Sequence[ToolSpec] = (), fmt: ToolCallFormat = HERMES
) -> PromptStats:
    """Exact prompt tokens without the image processor or any pixels: the text around each
    image marker tokenized as the processor would, plus each image's planned tokens (planned or
    prepared); each video's placeholder text written by the processor itself from its plan (the
    timestamps between frames included) and tokenized in place.

    The whitespace the processor writes around an image (`image_edges`) is tokenized in place,
    where it can merge with the template's text, and taken off the image's plan, which counts
    it alone."""
    text = templated(processor, messages, tools, fmt)
    marker = processor.image_token
    before, after = image_edges(processor)
    text = text.replace(marker, before + marker + after) if before or after else text
    videos = [p.frames for m in messages for p in m.content if isinstance(p, PreparedVideo | PlannedVideo)]
    video_spans: list[int] = []
    if videos:
        _, replacements = processor._process_videos(
            [stand_in(f) for f in videos], video_metadata=[metadata_of(f) for f in videos], return_metadata=True
        )
        [text], replaced = processor.get_text_with_replacements([text], [], replacements)
        video_spans = _spans(replaced[0], "video")
    tokenizer = processor.tokenizer
    offsets = tokenizer(text, return_offsets_mapping=True, **chat_text_kwargs(processor, text))["offset_mapping"]
    markers = _marker_spans(text, marker, video_spans)
    edges = sum(len(tokenizer(edge, add_special_tokens=False)["input_ids"]) for edge in (before, after) if edge)
    text_tokens = len(offsets) - _tokens_within(offsets, markers) - len(markers) // 2 * edges
    video_tokens = _tokens_within(offsets, video_spans)
    image_tokens = sum(p.tokens for m in messages for p in m.content if isinstance(p, PreparedImage | PlannedImage))
    return PromptStats(
        prompt_tokens=text_tokens + image_tokens, image_tokens=image_tokens, video_tokens=video_tokens
    )


def _marker_spans(text: str, marker: str, skip: Sequence[int]) -> list[int]:
    """Bounds of each `marker` in `text` outside the spans `skip` (GLM-4V's video frames are
    image markers, which belong to their video)."""
    spans: list[int] = []
    start = text.find(marker)
    while start >= 0:
        i = bisect_right(skip, start)
        if i % 2 == 0:  # not inside a skipped span
            spans += (start, start + len(marker))
            start = text.find(marker, start + len(marker))
        else:
            start = text.find(marker, skip[i])
    return spans


def image_edges(processor: Any) -> tuple[str, str]:
    """The whitespace a processor writes before and after each image's tokens, where it writes
    one fixed sequence (Gemma 3: "\n\n" either side); empty for the others, whose sequences
    start and end with special tokens."""
    sequence = getattr(processor, "full_image_sequence", None)
    if not isinstance(sequence, str):
        return "", ""
    return sequence[: len(sequence) - len(sequence.lstrip())], sequence[len(sequence.rstrip()) :]


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


def _tokens_touching(offsets: Sequence[Sequence[int]], bounds: Sequence[int]) -> int:
    """Tokens (character offsets) holding any character of the spans, given as the ascending
    bounds of disjoint spans; a token across two spans counts for each."""
    starts, ends = bounds[::2], bounds[1::2]
    count = 0
    for start, end in offsets:
        i = bisect_right(ends, start)  # the first span ending after the token starts
        while end > start and i < len(starts) and starts[i] < end:
            count += 1
            i += 1
    return count


def _tokens_within(offsets: Sequence[Sequence[int]], bounds: Sequence[int]) -> int:
    """Tokens (character offsets) wholly inside one of the spans, given as the ascending
    bounds of disjoint spans (start, end, start, end, ...)."""
    count = 0
    for start, end in offsets:
        i = bisect_right(bounds, start)  # odd: `start` is inside span i // 2
        if end > start and i % 2 and end <= bounds[i]:
            count += 1
    return count
