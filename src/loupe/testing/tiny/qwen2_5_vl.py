"""A tiny Qwen2.5-VL checkpoint with the image geometry of Qwen/Qwen2.5-VL-3B-Instruct."""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen2_5_VLConfig, Qwen2_5_VLTextConfig, Qwen2_5_VLVisionConfig

from loupe.testing.tiny.checkpoint import Parts, chat_tokenizer, merger_tower_dims, save_checkpoint
from loupe.testing.tiny.qwen2_vl import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    generation_config,
    span_token_ids,
    text_kwargs,
)
from loupe.testing.tiny.size import TextSize

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build", "parts"]

# Qwen2.5-VL-3B-Instruct's preprocessor_config.json, as published: the same pixels as Qwen2-VL.
# Its chat template and vision special tokens are Qwen2-VL's too, so both are shared.
PREPROCESSOR_CONFIG = {
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "Qwen2VLImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "max_pixels": 12845056,
    "merge_size": 2,
    "min_pixels": 3136,
    "patch_size": 14,
    "processor_class": "Qwen2_5_VLProcessor",
    "temporal_patch_size": 2,
}


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny windowed vision tower, the real patches."""
    return save_checkpoint(out_dir, *parts(size))


def parts(size: TextSize) -> Parts:
    """What `build` writes, before the weights exist."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    text = Qwen2_5_VLTextConfig(**text_kwargs(len(tokenizer), size, ids, max_positions=128000))
    # Two blocks, the last with full attention as in the published towers (7, 15, 23, 31 of 32);
    # the first attends within the published 112-pixel windows.
    vision = Qwen2_5_VLVisionConfig(
        **merger_tower_dims(size, patch_size=14),
        window_size=112,
        fullatt_block_indexes=[1],
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, **span_token_ids(ids), tie_word_embeddings=True
    )
    processor = {"processor_class": "Qwen2_5_VLProcessor"}
    return Parts(config, tokenizer, generation_config(ids), PREPROCESSOR_CONFIG, processor)
