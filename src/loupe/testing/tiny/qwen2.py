"""The Qwen2 chat language model under several tiny checkpoints: its token roles and config."""

from __future__ import annotations

from typing import Any

from transformers import Qwen2Config

from loupe.testing.tiny.checkpoint import text_dims
from loupe.testing.tiny.size import TextSize


def text_token_ids(ids: dict[str, int]) -> dict[str, Any]:
    """Qwen2's roles: text starts and pads with "<|endoftext|>", a turn ends at "<|im_end|>"."""
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }


def text_config(vocab_size: int, size: TextSize, ids: dict[str, int]) -> Qwen2Config:
    """A tiny Qwen2 with the published 32k context and rope, input and output embeddings tied."""
    return Qwen2Config(
        **text_dims(vocab_size, size),
        max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        **text_token_ids(ids),
        tie_word_embeddings=True,
    )
