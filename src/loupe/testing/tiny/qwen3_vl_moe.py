"""A tiny Qwen3-VL mixture-of-experts checkpoint (Qwen/Qwen3-VL-30B-A3B-Instruct's design)."""

from __future__ import annotations

from pathlib import Path

from transformers import Qwen3VLMoeConfig, Qwen3VLMoeTextConfig

from loupe.testing.tiny.qwen3_vl import SPECIAL_TOKENS, build_with
from loupe.testing.tiny.size import TextSize

__all__ = ["EXPERTS", "EXPERTS_PER_TOKEN", "SPECIAL_TOKENS", "build"]

# The published model routes each token to 8 of 128 experts in every layer; the tiny one to 2
# of 4, each expert a quarter of the dense MLP's width, so that routing is really exercised.
EXPERTS, EXPERTS_PER_TOKEN = 4, 2


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: Qwen3-VL's tower, processor and template, MoE text."""
    moe = {
        "num_experts": EXPERTS,
        "num_experts_per_tok": EXPERTS_PER_TOKEN,
        "moe_intermediate_size": size.intermediate_size // 4,
        "decoder_sparse_step": 1,
    }
    return build_with(out_dir, size, Qwen3VLMoeConfig, Qwen3VLMoeTextConfig, moe)
