"""One request's choices generated with transformers on the inference thread, streamed as events."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from loupe.domain import ChoiceFinished, FinishReason, GenerationEvent, SamplingParams, TextDelta, TokenLogprob
from loupe.engines.local.grammar import GrammarState, Grammars, apply
from loupe.engines.local.loader import LoadedModel
from loupe.engines.local.prompt import LocalPrompt
from loupe.engines.local.sampler import token_logprob
from loupe.engines.local.sampling import LastScores, generation_kwargs
from loupe.engines.local.text_stream import TextStream
from loupe.engines.local.vocab import Vocabulary

LogprobOf = Callable[[int], TokenLogprob | None]


class _ChoiceStreamer(BaseStreamer):
    """Receives each new token from `generate` and emits the text it makes safe to show."""

    def __init__(
        self, stream: TextStream, index: int, emit: Callable[[GenerationEvent], None], logprob: LogprobOf
    ) -> None:
        self._stream = stream
        self._index = index
        self._emit = emit
        self._logprob = logprob
        self._seen_prompt = False
        self.last_token: int | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self._seen_prompt:  # the first call carries the prompt ids
            self._seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.last_token = int(token)
            # Emitted even when the text is held back (a partial character or stop string), so
            # the tokens generated are known at every moment, e.g. when a client goes away.
            text = self._stream.push(self.last_token)
            entry = self._logprob(self.last_token)
            self._emit(TextDelta(index=self._index, text=text, tokens=1, logprobs=(entry,) if entry else ()))

    def end(self) -> None:
        text = self._stream.finish()
        if text:
            self._emit(TextDelta(index=self._index, text=text, tokens=0))


class GrammarMask(LogitsProcessor):
    """Masks the tokens the grammar forbids; advances it by the token chosen at the step before."""

    def __init__(self, grammars: Grammars, state: GrammarState) -> None:
        self._grammars = grammars
        self._state = state
        self._length: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._length is not None and input_ids.shape[1] > self._length:
            self._state.advance(int(input_ids[0, -1]))
        self._length = input_ids.shape[1]
        masked = scores.float()
        apply(masked, self._grammars.fill([self._state]).to(scores.device))
        return masked.to(scores.dtype)  # type: ignore[return-value]


class _StopWhen(StoppingCriteria):
    def __init__(self, condition: Callable[[], bool]) -> None:
        self._condition = condition

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._condition(), dtype=torch.bool)  # type: ignore[return-value]


def _logprob(
    vocabulary: Callable[[], Vocabulary], scores: LastScores, sampling: SamplingParams, token: int
) -> TokenLogprob | None:
    if not sampling.logprobs or scores.scores is None:
        return None
    return token_logprob(vocabulary(), scores.scores, token, sampling.top_logprobs)


def eos_ids(loaded: LoadedModel) -> set[int]:
    ids = loaded.model.generation_config.eos_token_id
    tokenizer_eos = loaded.processor.tokenizer.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer_eos is not None:
        found.add(int(tokenizer_eos))
    return found


def run_choices(
    loaded: LoadedModel,
    vocabulary: Callable[[], Vocabulary],
    grammars: Grammars,
    prompt: LocalPrompt,
    sampling: SamplingParams,
    max_tokens: int,
    emit: Callable[[GenerationEvent], None],
    cancelled: threading.Event,
) -> None:
    """Generate `sampling.n` choices one after another; stop early once `cancelled` is set."""
    tokenizer = loaded.processor.tokenizer
    stops = eos_ids(loaded)
    inputs = {k: v.to(loaded.device) for k, v in prompt.inputs.items()}
    for name in ("pixel_values", "pixel_values_videos"):
        if name in inputs:
            inputs[name] = inputs[name].to(loaded.model.dtype)
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)

    def decode(ids: Any) -> str:
        return str(tokenizer.decode(ids, skip_special_tokens=True))

    for index in range(sampling.n):
        stream = TextStream(decode, sampling.stop)
        kwargs = generation_kwargs(sampling, prompt.stats.prompt_tokens, max_tokens)
        scores = LastScores()
        if sampling.constraint is not None:
            kwargs["logits_processor"].append(GrammarMask(grammars, grammars.state(sampling.constraint)))
        if sampling.logprobs:
            kwargs["logits_processor"].append(scores)
        streamer = _ChoiceStreamer(stream, index, emit, partial(_logprob, vocabulary, scores, sampling))
        criteria = StoppingCriteriaList([_StopWhen(lambda: cancelled.is_set() or stream.stopped)])
        with torch.inference_mode():
            loaded.model.generate(
                **inputs,
                **kwargs,
                streamer=streamer,
                stopping_criteria=criteria,
                eos_token_id=sorted(stops),
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops),
            )
        if cancelled.is_set():
            return
        natural_end = stream.stopped or streamer.last_token in stops
        reason: FinishReason = "stop" if natural_end or stream.tokens < max_tokens else "length"
        emit(ChoiceFinished(index=index, reason=reason, completion_tokens=stream.tokens))
