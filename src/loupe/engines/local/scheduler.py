"""Which requests run in the next engine step: continuous batching in plain Python (no torch).

Every step decodes one token for each running sequence in one batched forward pass. New requests
join between steps: their prefill (vision encoding included) is admitted against a token budget,
at least one request per step, so long prompts cannot stall the running streams for long,
running streams cannot starve the queue, and a burst of requests gets its first tokens a group
at a time. What a request costs against the budget is its prompt length, or what `cost` says
(the engine weighs image placeholders by the vision work behind them). A request whose consumer
has fallen behind is paused: its sequences keep their place (and states) but sit out the decode
steps until it is resumed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from loupe.engines.local.sequence import Request, Sequence, Status


@dataclass(frozen=True, slots=True)
class Step:
    """What one engine step does: prefill these requests, then decode these sequences."""

    prefill: tuple[Request, ...]
    decode: tuple[Sequence, ...]


class Scheduler:
    def __init__(self, max_running: int, prefill_budget: int, cost: Callable[[Request], int] | None = None) -> None:
        self._max_running = max_running
        self._prefill_budget = prefill_budget
        self._cost = cost or (lambda request: request.prompt_length)
        self._waiting: deque[Request] = deque()
        self._running: list[Sequence] = []
        self._paused: set[int] = set()  # request ids

    @property
    def idle(self) -> bool:
        return not self._waiting and not self._running

    @property
    def running(self) -> tuple[Sequence, ...]:
        return tuple(self._running)

    def running_requests(self) -> list[Request]:
        """Every request with a running sequence, once each."""
        return list({id(s.request): s.request for s in self._running}.values())

    def pause(self, request: Request) -> None:
        """Leave this request's sequences out of the decode steps until `resume`."""
        self._paused.add(request.id)

    def resume(self, request: Request) -> None:
        self._paused.discard(request.id)

    def is_paused(self, request: Request) -> bool:
        return request.id in self._paused

    def requests(self) -> list[Request]:
        """Every request waiting or running, once each."""
        seen = {id(r): r for r in self._waiting}
        seen.update((id(s.request), s.request) for s in self._running)
        return list(seen.values())

    def add(self, request: Request) -> None:
        self._waiting.append(request)

    def schedule(self) -> Step:
        decode = tuple(s for s in self._running if s.request.id not in self._paused)
        prefill: list[Request] = []
        budget = self._prefill_budget
        while self._waiting:
            request = self._waiting[0]
            if len(self._running) + len(request.sequences) > self._max_running and self._running:
                break
            cost = self._cost(request)
            if prefill and cost > budget:
                break
            self._waiting.popleft()
            budget -= cost
            prefill.append(request)
            for seq in request.sequences:
                seq.status = Status.RUNNING
                self._running.append(seq)
        return Step(prefill=tuple(prefill), decode=decode)

    def retire(self, seq: Sequence) -> None:
        """Take a finished sequence out of the running batch."""
        if seq in self._running:
            self._running.remove(seq)
        if seq.request.finished:
            self._paused.discard(seq.request.id)

    def abort(self, request: Request) -> list[Sequence]:
        """Drop a request wherever it is; return its sequences that were running."""
        if request in self._waiting:
            self._waiting.remove(request)
        dropped = [s for s in request.sequences if s in self._running]
        for seq in request.sequences:
            if not seq.finished:
                seq.finish("cancelled")
        self._running = [s for s in self._running if s.request is not request]
        self._paused.discard(request.id)
        return dropped
