"""A model loaded for the CPU multiplies its linear layers with oneDNN: same results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForImageTextToText

from loupe.engines.local import cpu_linear
from loupe.engines.local.cpu_linear import PackedLinear, packed_linears, padded_rows
from loupe.engines.local.loader import load_model


def test_every_linear_and_a_tied_head_are_packed(tiny_checkpoint: Callable[[str], Path]) -> None:
    path = tiny_checkpoint("qwen2-vl")
    model = load_model(str(path), device="cpu", dtype="float32").model
    plain = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    assert plain.lm_head.weight is plain.get_input_embeddings().weight  # tied in the checkpoint
    # The head gets a packed copy; the embedding lookup keeps the plain weight.
    assert isinstance(model.lm_head, PackedLinear)
    assert torch.equal(model.get_input_embeddings().weight, plain.get_input_embeddings().weight)
    packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
    owned = [m for m in plain.modules() if type(m) is nn.Linear]
    assert len(packed) == len(owned) > 20
    assert not any(type(m) is nn.Linear for m in model.modules())
    # Packed weights are not parameters or state: the state dict holds what is left, unchanged.
    state = plain.state_dict()
    assert all(torch.equal(p, state[k]) for k, p in model.state_dict().items())

    vocab = model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(0)
    for rows, length in ((3, 40), (16, 1), (1, 300)):  # a short prefill, a decode step, a long prefill
        ids = torch.randint(20, vocab, (rows, length), generator=generator)
        with torch.inference_mode():
            ours, theirs = model(input_ids=ids).logits, plain(input_ids=ids).logits
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)
        assert torch.equal(ours.argmax(-1), theirs.argmax(-1))


# bfloat16 products accumulate in float32 on both paths, in different orders: the outputs then
# differ by a rounding of the bfloat16 result (8 bits of mantissa) at most.
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 1e-2}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_every_row_count_gives_the_linear_product(bias: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(96, 40, bias=bias).to(dtype).eval()
    packed = PackedLinear(linear)
    tol = TOLERANCE[dtype]
    with torch.inference_mode():
        for rows in [0, 1, 7, 8, 9, 63, 255, 256, 257, 300]:
            x = torch.randn(rows, 96, dtype=dtype)
            torch.testing.assert_close(packed(x), linear(x), atol=tol, rtol=tol)
        # Leading dimensions kept; a non-contiguous input (a transposed view) taken as it is.
        x = torch.randn(2, 5, 96, dtype=dtype)
        assert packed(x).shape == (2, 5, 40) and packed(x).dtype == dtype
        torch.testing.assert_close(packed(x), linear(x), atol=tol, rtol=tol)
        xt = torch.randn(96, 11, dtype=dtype).t()
        torch.testing.assert_close(packed(xt), linear(xt), atol=tol, rtol=tol)


def test_short_inputs_share_a_few_padded_sizes() -> None:
    exact, bucket, limit = cpu_linear.ROW_EXACT_LIMIT, cpu_linear.ROW_BUCKET, cpu_linear.ROW_BUCKET_LIMIT
    # Decode batches keep their size (a few dozen, each compiled once); short prefills share buckets.
    assert [padded_rows(r) for r in range(1, exact + 1)] == list(range(1, exact + 1))
    sizes = {padded_rows(rows) for rows in range(exact + 1, limit + 1)}
    assert sizes == set(range(exact + bucket, limit + 1, bucket))
    assert all(0 <= padded_rows(r) - r < bucket for r in range(exact + 1, limit + 1))
    assert padded_rows(limit + 1) == limit + 1 and padded_rows(4000) == 4000


def test_without_onednn_nothing_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    assert packed_linears(model) == 0
    assert all(type(m) is nn.Linear for m in (model[0], model[2]))


def test_bfloat16_models_are_packed_too(tiny_checkpoint: Callable[[str], Path]) -> None:
    model = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="bfloat16").model
    packed = [m for m in model.modules() if isinstance(m, PackedLinear)]
    assert len(packed) > 20 and all(m.weight.dtype == torch.bfloat16 for m in packed)
    assert isinstance(model.lm_head, PackedLinear)  # tied to the embeddings, packed all the same
    assert not any(type(m) is nn.Linear for m in model.modules())
