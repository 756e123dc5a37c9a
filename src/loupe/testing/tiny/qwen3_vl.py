"""A tiny Qwen3-VL checkpoint with the image geometry of Qwen/Qwen3-VL-2B-Instruct."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig, Qwen3VLConfig, Qwen3VLTextConfig

from loupe.testing.tiny import qwen2
from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    merger_tower_dims,
    save_checkpoint,
    text_dims,
)
from loupe.testing.tiny.qwen2_vl import CHAT_TEMPLATE as QWEN2_VL_CHAT_TEMPLATE
from loupe.testing.tiny.qwen2_vl import SPECIAL_TOKENS, generation_config, span_token_ids
from loupe.testing.tiny.size import TextSize

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build", "build_with"]

# Behaves as the published Instruct template: Qwen2-VL's without its default system turn (a
# system message may be a string or text parts); the same vision spans, optional "Picture n: "
# labels, and the assistant header when a generation prompt is asked for.
_DEFAULT_SYSTEM_TURN = """\
    {%- if loop.first and message['role'] != 'system' -%}
        {{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
    {%- endif -%}
"""
CHAT_TEMPLATE = QWEN2_VL_CHAT_TEMPLATE.replace(_DEFAULT_SYSTEM_TURN, "", 1)

# Qwen3-VL-2B-Instruct's preprocessor_config.json, as published: patches of 16, merged 2 x 2,
# so one token is 32 x 32 pixels, and the pixel bounds given as `size`.
PREPROCESSOR_CONFIG = {
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Qwen2VLImageProcessorFast",
    "image_std": [0.5, 0.5, 0.5],
    "merge_size": 2,
    "patch_size": 16,
    "processor_class": "Qwen3VLProcessor",
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "temporal_patch_size": 2,
}


def interleaved_mrope_section(head_dim: int) -> list[int]:
    """(temporal, height, width) in the published 24/20/20 proportion of half the head dimension.

    Qwen3-VL interleaves the sections (height and width take every third frequency from 1 and
    2), so each spatial section may be at most a third of half the head dimension.
    """
    half = head_dim // 2
    spatial = half * 20 // 64
    return [half - 2 * spatial, spatial, spatial]


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny deepstack vision tower, the real patches."""
    return build_with(out_dir, size, Qwen3VLConfig, Qwen3VLTextConfig, {})


def build_with(
    out_dir: Path,
    size: TextSize,
    config_class: Callable[..., PretrainedConfig],
    text_class: Callable[..., PretrainedConfig],
    text_extra: dict[str, Any],
) -> Path:
    """The Qwen3-VL checkpoint with these config classes (dense or mixture of experts) and these
    further text-model settings; the vision tower and processor are the same for both."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    text = text_class(
        **text_dims(len(tokenizer), size),
        head_dim=size.head_dim,
        max_position_embeddings=262144,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 5_000_000.0,
            "mrope_section": interleaved_mrope_section(size.head_dim),
            "mrope_interleaved": True,
        },
        **qwen2.text_token_ids(ids),
        **text_extra,
    )
    # The published 48 x 48 grid of learned position embeddings; one deepstack layer, as the
    # text model may have a single layer (the published towers feed three).
    vision = {
        **merger_tower_dims(size, patch_size=16),
        "num_position_embeddings": 2304,
        "deepstack_visual_indexes": [1],
    }
    config = config_class(
        text_config=text, vision_config=vision, **span_token_ids(ids), tie_word_embeddings=True
    )
    processor = {"processor_class": "Qwen3VLProcessor"}
    return save_checkpoint(
        out_dir, config, tokenizer, generation_config(ids), PREPROCESSOR_CONFIG, processor
    )
