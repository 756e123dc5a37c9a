"""A tiny Qwen2.5-VL checkpoint with the image geometry of Qwen/Qwen2.5-VL-3B-Instruct."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLTextConfig,
    Qwen2_5_VLVisionConfig,
)

from loupe.testing.tiny.checkpoint import save_checkpoint, token_id
from loupe.testing.tiny.qwen2_vl import CHAT_TEMPLATE, SPECIAL_TOKENS, mrope_section
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import train_tokenizer

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

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
    tokenizer = train_tokenizer(SPECIAL_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    ids = {token: token_id(tokenizer, token) for token in SPECIAL_TOKENS.tokens}
    text = Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=128000,
        max_window_layers=size.layers,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": mrope_section(size.head_dim),
        },
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    # Two blocks, the last with full attention as in the published towers (7, 15, 23, 31 of 32);
    # the first attends within the published 112-pixel windows.
    vision = Qwen2_5_VLVisionConfig(
        depth=2,
        hidden_size=32,
        intermediate_size=64,
        num_heads=2,
        out_hidden_size=size.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        window_size=112,
        fullatt_block_indexes=[1],
        tokens_per_second=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    generation = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    json_files = {
        "preprocessor_config.json": PREPROCESSOR_CONFIG,
        "processor_config.json": {"processor_class": "Qwen2_5_VLProcessor"},
    }
    return save_checkpoint(out_dir, config, tokenizer, generation, json_files)
