"""A tiny Llama 4 checkpoint with the image geometry of meta-llama/Llama-4-Scout-17B-16E-Instruct.

The text model keeps Llama 4's design at a small scale: mixture-of-experts layers (4 routed
experts, one per token, and the shared expert) between dense ones as in Maverick, and the
attention pattern of both: chunked attention with RoPE, every second layer (published: every
fourth) global attention without RoPE, with its temperature tuning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import GenerationConfig, Llama4Config, Llama4TextConfig, Llama4VisionConfig
from transformers.models.llama4.processing_llama4 import chat_template as PUBLISHED_TEMPLATE

from loupe.testing.tiny.checkpoint import (
    chat_tokenizer,
    prepend_bos,
    save_checkpoint,
    text_dims,
    tower_dims,
)
from loupe.testing.tiny.size import TextSize
from loupe.testing.tiny.tokenizer import SpecialTokens

__all__ = ["CHAT_TEMPLATE", "PREPROCESSOR_CONFIG", "PROCESSOR_CONFIG", "SPECIAL_TOKENS", "build"]

# The published control tokens that the template and processor use, in their id order.
SPECIAL_TOKENS = SpecialTokens(
    tokens=(
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|fim_prefix|>",
        "<|fim_middle|>",
        "<|fim_suffix|>",
        "<|header_start|>",
        "<|header_end|>",
        "<|eom|>",
        "<|eot|>",
        "<|step|>",
        "<|python_start|>",
        "<|python_end|>",
        "<|finetune_right_pad|>",
        "<|image_start|>",
        "<|image_end|>",
        "<|tile_x_separator|>",
        "<|tile_y_separator|>",
        "<|image|>",
        "<|patch|>",
    ),
    bos="<|begin_of_text|>",
    eos="<|eot|>",
    pad="<|finetune_right_pad|>",
)

# The published template, which transformers ships as Llama4Processor's default.
CHAT_TEMPLATE = PUBLISHED_TEMPLATE

# Llama-4-Scout-17B-16E-Instruct's preprocessor_config.json, as published: tiles of 336, at most
# 16 of them, bilinear.
PREPROCESSOR_CONFIG = {
    "crop_size": None,
    "data_format": "channels_first",
    "default_to_square": True,
    "do_center_crop": None,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "Llama4ImageProcessorFast",
    "image_std": [0.5, 0.5, 0.5],
    "max_patches": 16,
    "processor_class": "Llama4Processor",
    "resample": 2,
    "rescale_factor": 0.00392156862745098,
    "resize_to_max_canvas": False,
    "size": {"height": 336, "width": 336},
}

# Its processor_config.json: patches of 14, pixel-shuffled at 0.5, so 144 tokens a tile.
IMAGE_SIZE, PATCH_SIZE, PIXEL_SHUFFLE_RATIO = 336, 14, 0.5
PROCESSOR_CONFIG = {
    "fake_image_token": "<|image|>",
    "image_token": "<|image|>",
    "patch_size": PATCH_SIZE,
    "pixel_shuffle_ratio": PIXEL_SHUFFLE_RATIO,
    "processor_class": "Llama4Processor",
}

EXPERTS = 4


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: a tiny vision tower with the real tiles and shuffle."""
    tokenizer, ids = chat_tokenizer(SPECIAL_TOKENS, CHAT_TEMPLATE)
    prepend_bos(tokenizer, "<|begin_of_text|>")  # as published: the template writes one too
    stops = [ids["<|end_of_text|>"], ids["<|eom|>"], ids["<|eot|>"]]
    roles: dict[str, Any] = {
        "bos_token_id": ids["<|begin_of_text|>"],
        "eos_token_id": stops,
        "pad_token_id": ids["<|finetune_right_pad|>"],
    }
    text = Llama4TextConfig(
        **text_dims(len(tokenizer), size),
        head_dim=size.head_dim,
        intermediate_size_mlp=size.intermediate_size,
        num_local_experts=EXPERTS,
        num_experts_per_tok=1,
        interleave_moe_layer_step=2,
        no_rope_layer_interval=2,
        attention_chunk_size=8192,
        use_qk_norm=True,
        max_position_embeddings=10_485_760,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500_000.0,
            "factor": 16.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
        },
        **roles,
    )
    # The published tower's proportions: the shuffle makes 4 x hidden channels, which the
    # adapter takes to the projector's width.
    tower = tower_dims()
    vision = Llama4VisionConfig(
        **tower,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        pixel_shuffle_ratio=PIXEL_SHUFFLE_RATIO,
        projector_input_dim=2 * tower["hidden_size"],
        projector_output_dim=2 * tower["hidden_size"],
        vision_output_dim=2 * tower["hidden_size"],
    )
    config = Llama4Config(
        text_config=text,
        vision_config=vision,
        boi_token_index=ids["<|image_start|>"],
        eoi_token_index=ids["<|image_end|>"],
        image_token_index=ids["<|patch|>"],
    )
    generation = GenerationConfig(**roles)  # type: ignore[no-untyped-call]
    return save_checkpoint(
        out_dir, config, tokenizer, generation, PREPROCESSOR_CONFIG, PROCESSOR_CONFIG
    )
