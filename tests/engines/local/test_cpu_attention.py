"""A model loaded for the CPU takes the folded grouped-query path in decode steps: same results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from loupe.engines.local.cpu_attention import CPU_ATTENTION, cpu_attention
from loupe.engines.local.loader import load_model
from tests.engines.local.test_batching_logits import FAMILIES


class _Layer(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.num_key_value_groups = groups
        self.is_causal = True


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch", [1, 5])
def test_one_query_row_attends_as_unfolded_heads(batch: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    query = torch.randn(batch, 12, 1, 32, dtype=dtype)
    room = torch.randn(2, batch, 4, 40, 32, dtype=dtype)
    key, value = room[0][..., :33, :], room[1][..., :33, :]  # views into a cache with room, as the runner's
    out, _ = cpu_attention(_Layer(3), query, key, value, None, scaling=0.3)
    expected = F.scaled_dot_product_attention(query, key, value, scale=0.3, enable_gqa=True).transpose(1, 2)
    assert out.shape == (batch, 1, 12, 32) and out.is_contiguous()
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out, expected, atol=tol, rtol=tol)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_decode_steps_give_sdpa_logits(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    model = load_model(str(tiny_checkpoint(family)), device="cpu", dtype="float32").model
    assert model.config._attn_implementation == CPU_ATTENTION
    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(20, min(vocab, 200), (3, 24), generator=torch.Generator().manual_seed(0))

    def steps(implementation: str) -> list[torch.Tensor]:
        model.set_attn_implementation(implementation)
        cache = DynamicCache()
        logits = []
        with torch.inference_mode():
            out: Any = model(input_ids=ids[:, :20], cache=cache, use_cache=True)
            for at in range(20, 24):  # decode steps with no padding: no mask, the folded path
                out = model(input_ids=ids[:, at : at + 1], cache=cache, use_cache=True)
                logits.append(out.logits[:, -1])
        return logits

    try:
        folded, plain = steps(CPU_ATTENTION), steps("sdpa")
    finally:
        model.set_attn_implementation(CPU_ATTENTION)
    for ours, theirs in zip(folded, plain, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
