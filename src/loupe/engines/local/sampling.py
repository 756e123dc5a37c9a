"""Sampling parameters to transformers generation arguments, plus OpenAI's penalties and bias."""

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


class LogitBias(LogitsProcessor):
    """OpenAI's `logit_bias`: each listed token's logit raised or lowered by its value."""

    def __init__(self, bias: tuple[tuple[int, float], ...]) -> None:
        self._ids = torch.tensor([t for t, _ in bias])
        self._values = torch.tensor([v for _, v in bias])

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        values = self._values.to(scores.device, scores.dtype).expand(scores.shape[0], -1)
        return scores.index_add(1, self._ids.to(scores.device), values)  # type: ignore[return-value]


class LastScores(LogitsProcessor):
    """Keeps the scores of the step (after penalties and bias, before temperature: processors
    given to `generate` run before its warpers), for the log probabilities of the token chosen."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores = scores[0].float()
        return scores


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
    if sampling.logit_bias:
        processors.append(LogitBias(sampling.logit_bias))
    kwargs["logits_processor"] = processors
    return kwargs
