"""The lean decode step computes transformers' logits, and the runner takes it where it covers the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache

from loupe.engines.local.batch_cache import RoomyLayer, layer_states
from loupe.engines.local.families import family_for
from loupe.engines.local.lean_decode import LeanDecoder
from loupe.engines.local.loader import LoadedModel, load_model
from tests.engines.local.test_batching import GREEDY, conversations, run

COVERED = ["idefics3", "internvl", "llava", "llava-onevision", "mistral3", "qwen2-vl", "qwen2.5-vl", "smolvlm"]
NOT_COVERED = ["gemma3", "glm4v", "llama4", "qwen3-vl"]
# float32 products agree to rounding; bfloat16 ones may round a last bit differently.
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


def states(loaded: LoadedModel, lengths: list[int]) -> tuple[list[list[tuple[torch.Tensor, torch.Tensor]]], int]:
    """Each row's key/value states after a prompt of its length (random ids), and the vocabulary."""
    vocab = loaded.model.get_input_embeddings().num_embeddings
    generator = torch.Generator().manual_seed(0)
    rows = []
    for length in lengths:
        cache = DynamicCache()
        ids = torch.randint(20, vocab, (1, length), generator=generator)
        loaded.model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        rows.append([(k.clone(), v.clone()) for k, v in map(layer_states, cache.layers)])
    return rows, vocab


def batch_cache(rows: list[list[tuple[torch.Tensor, torch.Tensor]]], width: int) -> Cache:
    return Cache(layers=[RoomyLayer.of_rows([row[i] for row in rows], width) for i in range(len(rows[0]))])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", COVERED)
def test_steps_give_the_logits_of_transformers(
    family: str, dtype: torch.dtype, tiny_checkpoint: Callable[[str], Path]
) -> None:
    loaded = load_model(str(tiny_checkpoint(family)), device="cpu", dtype=str(dtype).removeprefix("torch."))
    lean = LeanDecoder.of(loaded.model)
    assert lean is not None
    mrope = family_for(loaded.checkpoint.model_type).mrope  # type: ignore[union-attr]
    lengths = [7, 19, 12]  # left-padded to 19: the mask hides padding in two rows
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        rows, vocab = states(loaded, lengths)
        width = max(lengths)
        ours, theirs = batch_cache(rows, width), batch_cache(rows, width)
        mask = torch.tensor([[0] * (width - n) + [1] * n for n in lengths])
        for step in range(4):
            ids = torch.randint(20, vocab, (len(lengths), 1), generator=generator)
            places = torch.tensor([[n + step] for n in lengths])
            positions = places[None].expand(3, -1, -1) if mrope else places
            mask = torch.cat([mask, mask.new_ones(len(lengths), 1)], dim=1)
            got = lean(ids, mask, positions, ours)
            want = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=theirs, use_cache=True)
            tol = TOLERANCE[dtype]
            torch.testing.assert_close(got, want.logits[:, -1], atol=tol, rtol=tol)
        for (k, v), (k2, v2) in zip(map(layer_states, ours.layers), map(layer_states, theirs.layers), strict=True):
            torch.testing.assert_close(k, k2, atol=tol, rtol=tol)
            torch.testing.assert_close(v, v2, atol=tol, rtol=tol)


def test_an_unpadded_batch_and_a_single_row_too(tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint("smolvlm")), device="cpu", dtype="float32")
    lean = LeanDecoder.of(loaded.model)
    assert lean is not None
    with torch.inference_mode():
        for lengths in ([9, 9], [5]):
            rows, _ = states(loaded, lengths)
            ours, theirs = batch_cache(rows, lengths[0]), batch_cache(rows, lengths[0])
            ids = torch.full((len(lengths), 1), 42)
            mask = torch.ones(len(lengths), lengths[0] + 1, dtype=torch.long)
            positions = torch.full((len(lengths), 1), lengths[0])
            want = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=theirs, use_cache=True)
            torch.testing.assert_close(lean(ids, mask, positions, ours), want.logits[:, -1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", NOT_COVERED)
def test_other_families_decode_through_transformers(family: str, tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint(family)), device="cpu", dtype="float32")
    assert LeanDecoder.of(loaded.model) is None


def test_a_sliding_window_is_not_covered(tiny_checkpoint: Callable[[str], Path]) -> None:
    loaded = load_model(str(tiny_checkpoint("mistral3")), device="cpu", dtype="float32")
    loaded.model.get_decoder().config.sliding_window = 16
    assert LeanDecoder.of(loaded.model) is None


def test_the_runner_decodes_with_it(tiny_checkpoint: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model(str(tiny_checkpoint("qwen2-vl")), device="cpu", dtype="float32")
    calls: list[int] = []
    step = LeanDecoder.__call__

    def counted(self: LeanDecoder, ids: torch.Tensor, *args: Any) -> torch.Tensor:
        calls.append(ids.shape[0])
        return step(self, ids, *args)

    monkeypatch.setattr(LeanDecoder, "__call__", counted)
    jobs = [(conversations()[0], GREEDY, 6), (conversations()[1], GREEDY, 6)]
    results = run(loaded, jobs)
    assert all(results) and calls  # every decode step went the lean way
