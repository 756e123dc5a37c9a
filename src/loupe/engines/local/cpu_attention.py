"""Attention of a model on the CPU: transformers' SDPA path, with a decode step's grouped query
heads folded onto their key-value heads.

In a decode step (one query position) of a model with grouped-query attention, transformers
hands PyTorch's SDPA the query heads as they are with `enable_gqa=True` when no mask is needed
(every row of the batch the same length, or batch 1); PyTorch's CPU flash kernel then runs one
task per query head over a single query row. With a mask it folds the query heads of each
key-value head into that head's query rows instead (`pack_gqa`), so the kernel reads each key
once per group. Measured on an AMD EPYC with AVX512-BF16 (2 threads, bfloat16, the shapes of
SmolVLM-256M's text model: 9 query heads on 3 key-value heads, 103 positions, interleaved
minimums): the folded call took 104 us instead of 384 at batch 8 and 194 instead of 761 at
batch 16, per layer; at batch 1, 22 instead of 58. This module takes the folded path for the
unmasked case as well; the result is the same attention (each query row attends to every key).
Every other call goes to transformers' SDPA function unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

__all__ = ["CPU_ATTENTION", "folded_attention", "use_cpu_attention"]

CPU_ATTENTION = "loupe_cpu_sdpa"


def folded_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    groups: int,
    scaling: float | None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of one new position per sequence, `query` [batch, heads, 1, dim], with the
    `groups` query heads of each key-value head folded into that head's query rows; returns
    [batch, heads, dim]."""
    batch, heads, _, dim = query.shape
    folded = query.reshape(batch, heads // groups, groups, dim)
    out = F.scaled_dot_product_attention(folded, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, heads, dim)


def cpu_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    groups = int(getattr(module, "num_key_value_groups", 1))
    batch, heads, rows, dim = query.shape
    plain = attention_mask is None and kwargs.get("position_bias") is None and kwargs.get("softcap") is None
    if rows == 1 and groups > 1 and plain and dropout == 0.0 and key.shape[-1] == value.shape[-1] == dim:
        out = folded_attention(query, key, value, groups, scaling)
        return out.unsqueeze(2).transpose(1, 2).contiguous(), None
    result: tuple[torch.Tensor, None] = sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )
    return result


def use_cpu_attention(model: Any) -> bool:
    """Route `model`'s attention through `cpu_attention` where every sub-model of it uses SDPA;
    returns whether it did."""
    if any(config._attn_implementation != "sdpa" for config in _configs(model.config)):
        return False
    AttentionInterface.register(CPU_ATTENTION, cpu_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(CPU_ATTENTION, sdpa_mask)
    model.set_attn_implementation(CPU_ATTENTION)
    return True


def _configs(config: Any) -> list[Any]:
    """A model's config and its sub-configs, at every depth."""
    found = [config]
    for key in config.sub_configs:
        sub = getattr(config, key, None)
        if sub is not None:
            found += _configs(sub)
    return found
