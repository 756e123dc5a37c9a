"""Next tokens for a batch of sequences, each with its own sampling parameters.

Follows `model.generate`'s order so a request samples the same way on either path: repetition
penalty, OpenAI's frequency/presence penalties, `logit_bias`, then temperature, top-k, top-p and
min-p. Greedy rows take the arg-max after the penalties and bias, as `generate(do_sample=False)`
does. Log probabilities are those of the scores after the penalties and bias, before temperature
(so at temperature 0 the chosen token is the most likely one). Rows of constrained sequences
first have the tokens their grammar forbids masked out. Rows that need none of this (greedy, no
penalty, no bias, no logprobs, no grammar) share one arg-max and pay nothing for the others.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence as Seq
from typing import cast

import torch

from loupe.domain import SamplingParams, TokenLogprob
from loupe.engines.local.grammar import GrammarState, Grammars, apply
from loupe.engines.local.sequence import Sequence
from loupe.engines.local.vocab import Vocabulary

UNLIKELY = -9999.0  # OpenAI's logprob for a token that cannot be chosen (JSON has no -inf)


class Sampler:
    def __init__(self, vocabulary: Callable[[], Vocabulary], grammars: Grammars | None = None) -> None:
        self._generators: dict[int, torch.Generator] = {}
        self._vocabulary = vocabulary  # built on first use: only logprobs need it
        self._grammars = grammars

    def sample(self, logits: torch.Tensor, seqs: Seq[Sequence]) -> list[int]:
        """One token per row of `logits` (rows in the order of `seqs`); rows that asked for
        logprobs record them on their sequence."""
        logits = logits.float()
        constrained = [i for i, s in enumerate(seqs) if s.grammar is not None]
        masked = self._masked(logits, seqs, constrained) if constrained else {}
        tokens = self._pick(logits, seqs, masked)
        for i in constrained:
            seqs[i].grammar.advance(tokens[i])  # type: ignore[union-attr]
        return tokens

    def _masked(self, logits: torch.Tensor, seqs: Seq[Sequence], rows: list[int]) -> dict[int, torch.Tensor]:
        """The constrained rows (a copy: `logits` may be a view of the model's output), with
        the tokens their grammars forbid at -inf."""
        assert self._grammars is not None, "a constrained sequence needs the model's grammars"
        states = [cast(GrammarState, seqs[i].grammar) for i in rows]
        masked = logits[torch.tensor(rows, device=logits.device)]
        apply(masked, self._grammars.fill(states).to(logits.device))
        return dict(zip(rows, masked, strict=True))

    def _pick(self, logits: torch.Tensor, seqs: Seq[Sequence], masked: dict[int, torch.Tensor]) -> list[int]:
        plain = [i for i, s in enumerate(seqs) if i not in masked and _plain_greedy(s.request.sampling)]
        chosen = set(plain)
        if len(plain) == len(seqs):
            return [int(t) for t in logits.argmax(dim=-1).tolist()]
        tokens = [0] * len(seqs)
        if plain:
            picked = logits[torch.tensor(plain, device=logits.device)].argmax(dim=-1).tolist()
            for i, token in zip(plain, picked, strict=True):
                tokens[i] = int(token)
        for i, seq in enumerate(seqs):
            if i not in chosen:
                tokens[i] = self._one(masked.get(i, logits[i]), seq)
        return tokens

    def release(self, request_id: int) -> None:
        self._generators.pop(request_id, None)

    def _one(self, scores: torch.Tensor, seq: Sequence) -> int:
        sampling = seq.request.sampling
        scores = biased(_penalised(scores, seq, sampling), sampling)
        if sampling.greedy:
            token = int(scores.argmax())
        else:
            probs = torch.softmax(_warped(scores, sampling), dim=-1)
            token = int(torch.multinomial(probs, 1, generator=self._generator(seq, probs.device)))
        if sampling.logprobs:
            seq.logprobs.append(token_logprob(self._vocabulary(), scores, token, sampling.top_logprobs))
        return token

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
    return sampling.greedy and not (_has_penalties(sampling) or sampling.logit_bias or sampling.logprobs)


def biased(scores: torch.Tensor, sampling: SamplingParams) -> torch.Tensor:
    """OpenAI's `logit_bias`: each listed token's logit raised or lowered by its value."""
    if not sampling.logit_bias:
        return scores
    ids = torch.tensor([t for t, _ in sampling.logit_bias], device=scores.device)
    values = torch.tensor([v for _, v in sampling.logit_bias], dtype=scores.dtype, device=scores.device)
    return scores.index_add(-1, ids, values)


def token_logprob(vocabulary: Vocabulary, scores: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """The chosen token's log probability under `scores`, with the `top` most likely tokens."""
    logprobs = torch.log_softmax(scores, dim=-1)
    chosen = vocabulary.candidate(token, _finite(float(logprobs[token])))
    best = torch.topk(logprobs, min(top, logprobs.shape[-1])) if top else None
    candidates = () if best is None else tuple(
        vocabulary.candidate(int(i), _finite(float(v))) for v, i in zip(best.values, best.indices, strict=True)
    )
    return TokenLogprob(chosen.token, chosen.logprob, chosen.bytes, candidates)


def _finite(logprob: float) -> float:
    return max(logprob, UNLIKELY)


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
