"""A tiny Qwen3-VL mixture-of-experts checkpoint (Qwen/Qwen3-VL-30B-A3B-Instruct's design)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import Qwen3VLMoeConfig, Qwen3VLMoeTextConfig

from loupe.testing.tiny.qwen3_vl import SPECIAL_TOKENS, build_with
from loupe.testing.tiny.size import TextSize

__all__ = ["EXPERTS", "EXPERTS_PER_TOKEN", "SPECIAL_TOKENS", "build"]

# The published model routes each token to 8 of 128 experts in every layer; the tiny one to 2
# of 4, so that routing is really exercised; each expert as wide as published for its model's
# width (768 for 2,048: 3/8), which leaves no expert matrix square (see `_publish_expert_layout`).
EXPERTS, EXPERTS_PER_TOKEN = 4, 2

# The fused expert weights, which transformers keeps as (experts, out, in).
_FUSED_EXPERTS = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")


def build(out_dir: Path, size: TextSize) -> Path:
    """Write the checkpoint into `out_dir`: Qwen3-VL's tower, processor and template, MoE text."""
    moe = {
        "num_experts": EXPERTS,
        "num_experts_per_tok": EXPERTS_PER_TOKEN,
        "moe_intermediate_size": size.hidden_size * 3 // 8,
        "decoder_sparse_step": 1,
        # As published: transformers' model always renormalises the chosen experts' weights and
        # its config has no such field, but vLLM's Qwen3-VL MoE model reads it (and fails without).
        "norm_topk_prob": True,
    }
    out = build_with(out_dir, size, Qwen3VLMoeConfig, Qwen3VLMoeTextConfig, moe)
    _publish_expert_layout(out / "model.safetensors")
    return out


def _publish_expert_layout(weights: Path) -> None:
    """Store the fused experts as published, (experts, in, out): vLLM reads only that layout;
    transformers transposes whichever does not match its own, which is unambiguous as long as
    no expert matrix is square."""
    tensors = load_file(weights)
    published = {
        name: tensor.transpose(1, 2).contiguous() if name.endswith(_FUSED_EXPERTS) else tensor
        for name, tensor in tensors.items()
    }
    save_file(published, weights, metadata={"format": "pt"})
