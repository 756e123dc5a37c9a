"""A decode step of a Llama- or Qwen2-style language model, without transformers' per-layer machinery.

A decode step computes one token per running sequence. transformers' forward pass builds a 4D
causal mask, walks each layer through decorators, keyword plumbing and the attention interface,
and normalises with five operators per RMSNorm: on a 576-wide, 30-layer model (SmolVLM-256M's
text model) that cost a seventh of a batch-8 step (33.9 ms through transformers, 28.9 ms here,
measured in one process; Qwen2-VL-2B-size 143 and 140 ms). `LeanDecoder` runs the same layers
with the same modules' weights straight through: the padding mask as a boolean row per sequence
(or none where no row is padded), PyTorch's RMSNorm operator, the query heads folded onto their
key-value heads for the CPU attention kernel (as cpu_attention does), and the head on the last
position only. The logits equal transformers' (bit for bit on the benchmark's bfloat16 models; a
test per covered family, in float32 and bfloat16, holds them within rounding).

It covers the text models whose layers it knows (`_COVERED`) with full attention, SiLU MLPs and
plain RMSNorms; `LeanDecoder.of` answers None for any other model, which decodes through
transformers as before (Gemma 3, Llama 4, GLM-4V, Qwen3-VL, sliding windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, CacheLayerMixin

from loupe.engines.local.cpu_attention import folded_attention

__all__ = ["LeanDecoder"]

# Text models and their decoder layers, by class name: each layer is input RMSNorm, attention
# (q, k, v, o projections; rotary embeddings from the model), residual, RMSNorm, gate/up/down
# SiLU MLP, residual.
_COVERED = {
    "LlamaModel": "LlamaDecoderLayer",
    "MistralModel": "MistralDecoderLayer",
    "Qwen2Model": "Qwen2DecoderLayer",
    "Qwen2VLTextModel": "Qwen2VLDecoderLayer",
    "Qwen2_5_VLTextModel": "Qwen2_5_VLDecoderLayer",
}
_NORMS = {"LlamaRMSNorm", "MistralRMSNorm", "Qwen2RMSNorm", "Qwen2VLRMSNorm", "Qwen2_5_VLRMSNorm"}


@dataclass(frozen=True, slots=True)
class _Layer:
    norm: tuple[torch.Tensor, float]
    q: nn.Module
    k: nn.Module
    v: nn.Module
    o: nn.Module
    post_norm: tuple[torch.Tensor, float]
    gate: nn.Module
    up: nn.Module
    down: nn.Module
    head_dim: int
    groups: int  # query heads per key-value head
    scaling: float


class LeanDecoder:
    """One decode step of a covered model: the next-token logits of every row."""

    def __init__(self, text_model: Any, head: nn.Module) -> None:
        self._embed = text_model.get_input_embeddings()
        self._rotary = text_model.rotary_emb
        self._layers = [_layer(layer) for layer in text_model.layers]
        self._norm = _norm(text_model.norm)
        self._head = head

    @classmethod
    def of(cls, model: Any) -> LeanDecoder | None:
        """The lean decoder of `model`'s language model, or None where it does not cover it."""
        text = model.get_decoder() if hasattr(model, "get_decoder") else None
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if text is None or head is None or not _covered(text):
            return None
        return cls(text, head)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Cache) -> torch.Tensor:
        """`ids` [B, 1]; `mask` [B, L] (0 over each row's left padding, the new position
        included); `positions` as the model takes them ([B, 1], or [3, B, 1] for M-RoPE);
        `cache` holds the L - 1 earlier positions and takes the new one. Returns [B, vocab]."""
        hidden = self._embed(ids)
        cos, sin = self._rotary(hidden, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        allowed = None if bool(mask.all()) else mask.bool()[:, None, None, :]
        batch, layers = hidden.shape[0], cast(list[CacheLayerMixin], cache.layers)
        for i, layer in enumerate(self._layers):
            x = _rms(hidden, layer.norm)
            q = layer.q(x).view(batch, 1, -1, layer.head_dim).transpose(1, 2)
            k = layer.k(x).view(batch, 1, -1, layer.head_dim).transpose(1, 2)
            v = layer.v(x).view(batch, 1, -1, layer.head_dim)
            keys, values = layers[i].update(_rotated(k, cos, sin), v.transpose(1, 2))
            out = folded_attention(_rotated(q, cos, sin), keys, values, layer.groups, layer.scaling, allowed)
            hidden = hidden + layer.o(out.reshape(batch, 1, -1))
            x = _rms(hidden, layer.post_norm)
            hidden = hidden + layer.down(F.silu(layer.gate(x)) * layer.up(x))
        logits: torch.Tensor = self._head(_rms(hidden, self._norm))
        return logits[:, -1]


def _covered(text: Any) -> bool:
    layer_type = _COVERED.get(type(text).__name__)
    config = getattr(text, "config", None)
    if layer_type is None or config is None or not hasattr(text, "rotary_emb"):
        return False
    if getattr(config, "hidden_act", None) != "silu":
        return False
    # Mistral's mask follows the config's window alone; the others' follows their layer types.
    if layer_type == "MistralDecoderLayer" and getattr(config, "sliding_window", None) is not None:
        return False
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or ()):
        return False
    layers = list(getattr(text, "layers", ()))
    norms = [text.norm] + [n for layer in layers for n in (layer.input_layernorm, layer.post_attention_layernorm)]
    return bool(layers) and all(type(layer).__name__ == layer_type for layer in layers) and all(
        type(norm).__name__ in _NORMS for norm in norms
    )


def _layer(layer: Any) -> _Layer:
    attn, mlp = layer.self_attn, layer.mlp
    return _Layer(
        _norm(layer.input_layernorm), attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj,
        _norm(layer.post_attention_layernorm), mlp.gate_proj, mlp.up_proj, mlp.down_proj,
        int(attn.head_dim), int(attn.num_key_value_groups), float(attn.scaling),
    )


def _norm(norm: Any) -> tuple[torch.Tensor, float]:
    return norm.weight, float(norm.variance_epsilon)


def _rms(hidden: torch.Tensor, norm: tuple[torch.Tensor, float]) -> torch.Tensor:
    """transformers' RMSNorm: normalised in float32, cast back, then scaled by the weight."""
    weight, eps = norm
    return weight * F.rms_norm(hidden.float(), (hidden.shape[-1],), None, eps).to(hidden.dtype)


def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embeddings as transformers applies them (rotating the two halves of each head)."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin
