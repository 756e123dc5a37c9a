"""One request and its choices as the scheduler sees them: token ids, budgets and finish state.

Plain Python (no torch): the scheduler and its tests drive these directly. What a model runner
needs of a request's inputs travels in `payload`, opaque here.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from loupe.domain import FinishReason, GenerationEvent, SamplingParams, TokenLogprob
from loupe.engines.local.text_stream import Decode, TextStream

Emit = Callable[[GenerationEvent], None]


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


_ids = itertools.count()


class GrammarCursor(Protocol):
    """Where a constrained sequence is in its grammar (see `grammar.GrammarState`)."""

    def advance(self, token: int) -> None: ...


@dataclass(eq=False, slots=True)
class Sequence:
    """One choice: the prompt ids followed by the tokens generated so far."""

    request: Request
    index: int
    tokens: list[int]
    stream: TextStream
    id: int = field(default_factory=lambda: next(_ids))
    status: Status = Status.WAITING
    finish_reason: FinishReason | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)  # sampled, not yet emitted
    grammar: GrammarCursor | None = None  # set at prefill when the request has a constraint

    @property
    def generated(self) -> int:
        return len(self.tokens) - self.request.prompt_length

    @property
    def finished(self) -> bool:
        return self.status is Status.FINISHED

    def append(self, token: int) -> str:
        """Take one generated token; return the text it makes safe to show, and decide whether
        this choice is over (an eos token, a stop string, or the token budget)."""
        self.tokens.append(token)
        text = self.stream.push(token)
        if token in self.request.eos or self.stream.stopped:
            self.finish("stop")
        elif self.generated >= self.request.max_tokens:
            self.finish("length")
        return text

    def take_logprobs(self) -> tuple[TokenLogprob, ...]:
        """The log probabilities recorded since the last call (empty unless the request asked)."""
        taken, self.logprobs = tuple(self.logprobs), []
        return taken

    def finish(self, reason: FinishReason) -> None:
        self.status = Status.FINISHED
        self.finish_reason = reason


@dataclass(eq=False, slots=True)
class Request:
    """A chat request: one prompt, `sampling.n` sibling sequences that share its prefill."""

    prompt_ids: list[int]
    sampling: SamplingParams
    max_tokens: int
    eos: frozenset[int]
    emit: Emit
    payload: object = None
    id: int = field(default_factory=lambda: next(_ids))
    sequences: list[Sequence] = field(default_factory=list)
    cancelled: bool = False
    cached_tokens: int = 0

    @classmethod
    def create(
        cls,
        prompt_ids: Iterable[int],
        sampling: SamplingParams,
        max_tokens: int,
        eos: Iterable[int],
        decode: Decode,
        emit: Emit,
        payload: object = None,
    ) -> Request:
        request = cls(list(prompt_ids), sampling, max_tokens, frozenset(eos), emit, payload)
        request.sequences = [
            Sequence(request, index, list(request.prompt_ids), TextStream(decode, sampling.stop))
            for index in range(sampling.n)
        ]
        return request

    @property
    def prompt_length(self) -> int:
        return len(self.prompt_ids)

    @property
    def finished(self) -> bool:
        return all(s.finished for s in self.sequences)
