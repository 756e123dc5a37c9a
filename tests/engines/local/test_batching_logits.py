"""The batched runner computes the same next-token logits as `model.generate`, step by step.

Greedy texts of tiny random models are often one repeated token, so equal texts alone would
miss a wrong position or mask. Logits do not: every row the runner samples from, for several
requests decoded together, must match what `generate` computes for that request alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from loupe.engines.local.generation import eos_ids
from loupe.engines.local.loader import load_model
from loupe.engines.local.prompt import build_prompt
from loupe.engines.local.sampler import Sampler
from tests.engines.local.test_batching import GREEDY, conversations, run

STEPS = [12, 5, 9, 7]


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "glm4v", "smolvlm"])
def test_batched_logits_equal_generate_logits(
    family: str, tiny_checkpoint: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = load_model(str(tiny_checkpoint(family)), device="cpu", dtype="float32")
    seen: dict[int, list[torch.Tensor]] = defaultdict(list)
    sample = Sampler.sample

    def spy(self: Sampler, logits: torch.Tensor, seqs: Any) -> list[int]:
        for row, seq in zip(logits, seqs, strict=True):
            seen[id(seq.request.payload)].append(row.detach().clone())
        return sample(self, logits, seqs)

    monkeypatch.setattr(Sampler, "sample", spy)
    jobs = [(messages, GREEDY, steps) for messages, steps in zip(conversations(), STEPS, strict=True)]
    prompts: list[Any] = []
    run(loaded, jobs, keep=prompts)
    assert len(prompts) == len(jobs)
    stops = sorted(eos_ids(loaded))
    for (messages, _, steps), prompt in zip(jobs, prompts, strict=True):
        inputs = build_prompt(loaded.processor, messages).inputs
        with torch.inference_mode():
            reference = loaded.model.generate(
                **inputs, do_sample=False, max_new_tokens=steps, output_logits=True,
                return_dict_in_generate=True, eos_token_id=stops, pad_token_id=stops[0],
            ).logits
        ours = seen[id(prompt)]
        assert len(ours) == len(reference) > 1
        for step, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
            torch.testing.assert_close(mine, theirs[0], atol=2e-4, rtol=1e-4, msg=f"step {step}")
