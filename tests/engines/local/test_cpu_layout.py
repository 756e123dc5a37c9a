"""A float32 model loaded for the CPU keeps its linear weights column-major: same values, same results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForImageTextToText

from loupe.engines.local.loader import load_model


def test_linear_weights_are_column_major_with_the_checkpoint_values(tiny_checkpoint: Callable[[str], Path]) -> None:
    path = tiny_checkpoint("qwen2-vl")
    model = load_model(str(path), device="cpu", dtype="float32").model
    plain = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    assert model.lm_head.weight is model.get_input_embeddings().weight  # tied: left as it is
    assert model.lm_head.weight.is_contiguous()
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear) and name != "lm_head"}
    assert len(linears) > 20
    for name, linear in linears.items():
        assert linear.weight.t().is_contiguous() and not linear.weight.is_contiguous(), name
    assert all(torch.equal(p, plain.state_dict()[k]) for k, p in model.state_dict().items())

    vocab = model.get_input_embeddings().num_embeddings
    # Three rows: the small-batch products the layout is for.
    ids = torch.randint(20, vocab, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours, theirs = model(input_ids=ids).logits, plain(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)
    assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


def test_bfloat16_weights_keep_their_layout(tiny_checkpoint: Callable[[str], Path]) -> None:
    model = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="bfloat16").model
    assert all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, nn.Linear))
