"""Next tokens for a batch of sequences, each with its own sampling parameters.

Follows `model.generate`'s order so a request samples the same way on either path: repetition
penalty, OpenAI's frequency/presence penalties, then temperature, top-k, top-p and min-p.
Greedy rows take the arg-max after the penalties, as `generate(do_sample=False)` does.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

import torch

from loupe.domain import SamplingParams
from loupe.engines.local.sequence import Sequence


class Sampler:
    def __init__(self) -> None:
        self._generators: dict[int, torch.Generator] = {}

    def sample(self, logits: torch.Tensor, seqs: Seq[Sequence]) -> list[int]:
        """One token per row of `logits` (rows in the order of `seqs`)."""
        logits = logits.float()
        if all(_plain_greedy(s.request.sampling) for s in seqs):
            return [int(t) for t in logits.argmax(dim=-1).tolist()]
        return [self._one(logits[i], seq) for i, seq in enumerate(seqs)]

    def release(self, request_id: int) -> None:
        self._generators.pop(request_id, None)

    def _one(self, scores: torch.Tensor, seq: Sequence) -> int:
        sampling = seq.request.sampling
        scores = _penalised(scores, seq, sampling)
        if sampling.greedy:
            return int(scores.argmax())
        probs = torch.softmax(_warped(scores, sampling), dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._generator(seq, probs.device)))

    def _generator(self, seq: Sequence, device: torch.device) -> torch.Generator | None:
        seed = seq.request.sampling.seed
        if seed is None:
            return None
        generator = self._generators.get(seq.request.id)
        if generator is None:
            generator = torch.Generator(device=device).manual_seed(seed)
            self._generators[seq.request.id] = generator
        return generator


def _plain_greedy(sampling: SamplingParams) -> bool:
    return sampling.greedy and not _has_penalties(sampling)


def _has_penalties(sampling: SamplingParams) -> bool:
    return bool(sampling.repetition_penalty != 1.0 or sampling.frequency_penalty or sampling.presence_penalty)


def _penalised(scores: torch.Tensor, seq: Sequence, sampling: SamplingParams) -> torch.Tensor:
    if not _has_penalties(sampling):
        return scores
    scores = scores.clone()
    if sampling.repetition_penalty != 1.0:
        seen = torch.tensor(seq.tokens, device=scores.device)
        picked = scores.gather(0, seen)
        picked = torch.where(picked < 0, picked * sampling.repetition_penalty, picked / sampling.repetition_penalty)
        scores.scatter_(0, seen, picked)
    generated = seq.tokens[seq.request.prompt_length :]
    if generated and (sampling.frequency_penalty or sampling.presence_penalty):
        counts = torch.zeros_like(scores)
        ids = torch.tensor(generated, device=scores.device)
        counts.scatter_add_(0, ids, torch.ones_like(ids, dtype=scores.dtype))
        scores -= sampling.frequency_penalty * counts + sampling.presence_penalty * (counts > 0).to(scores.dtype)
    return scores


def _warped(scores: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    scores = scores / sampling.temperature
    if sampling.top_k > 0:
        kth = torch.topk(scores, min(sampling.top_k, scores.shape[-1])).values[-1]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - sampling.top_p)
        drop[-1] = False  # keep at least one token
        scores = scores.masked_fill(drop.scatter(0, order, drop), -float("inf"))
    if sampling.min_p > 0.0:
        probs = scores.softmax(dim=-1)
        scores = scores.masked_fill(probs < sampling.min_p * probs.max(), -float("inf"))
    return scores
