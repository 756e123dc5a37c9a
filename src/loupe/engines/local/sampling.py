"""Sampling parameters to transformers generation arguments, plus OpenAI's two penalties."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from loupe.domain import SamplingParams


class OpenAIPenalties(LogitsProcessor):
    """`frequency_penalty` and `presence_penalty` as OpenAI defines them: over completion tokens only.

    logit[t] -= frequency * count(t) + presence * (count(t) > 0)
    """

    def __init__(self, prompt_length: int, frequency: float, presence: float) -> None:
        self._prompt_length = prompt_length
        self._frequency = frequency
        self._presence = presence

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self._prompt_length :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        penalty = self._frequency * counts + self._presence * (counts > 0).to(scores.dtype)
        return scores - penalty  # type: ignore[return-value]


def generation_kwargs(sampling: SamplingParams, prompt_length: int, max_tokens: int) -> dict[str, Any]:
    """Keyword arguments for `model.generate` that implement `sampling` for one choice."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "num_return_sequences": 1}
    if sampling.greedy:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        kwargs.update(
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p if sampling.top_p < 1.0 else None,
            top_k=sampling.top_k if sampling.top_k > 0 else None,
            min_p=sampling.min_p if sampling.min_p > 0.0 else None,
        )
    if sampling.repetition_penalty != 1.0:
        kwargs["repetition_penalty"] = sampling.repetition_penalty
    processors = LogitsProcessorList()
    if sampling.frequency_penalty or sampling.presence_penalty:
        processors.append(
            OpenAIPenalties(prompt_length, sampling.frequency_penalty, sampling.presence_penalty)
        )
    kwargs["logits_processor"] = processors
    return kwargs
