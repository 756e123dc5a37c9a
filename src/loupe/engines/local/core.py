"""The continuous-batching loop: one inference thread that steps the scheduler and the runner.

Requests arrive from the event loop through a thread-safe inbox; each step admits them, drops
the ones whose consumer went away, pauses the ones whose consumer has fallen behind (see
`flow`), prefills what the scheduler admits and decodes every other running sequence in one
batched forward pass, then streams each new token back as events.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Protocol

from loupe.domain import ChoiceFinished, GenerationEvent, SamplingParams, TextDelta
from loupe.engines.local.capacity import Capacity
from loupe.engines.local.flow import IDLE_S, POLL_S, StreamFlow
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.sequence import Request, Sequence
from loupe.engines.local.text_stream import Decode
from loupe.errors import EngineFailure, LoupeError, ServiceUnavailable, StreamStalled

_DONE = object()
_log = logging.getLogger(__name__)


class Runner(Protocol):
    def prefill(self, requests: list[Request]) -> list[list[int]]: ...
    def decode(self, seqs: list[Sequence]) -> list[int]: ...
    def release(self, seq: Sequence) -> None: ...


class EngineCore:
    def __init__(
        self,
        runner: Runner,
        scheduler: Scheduler,
        max_queue: int,
        decode: Decode,
        eos: frozenset[int],
        observe_batch: Callable[[int], None] | None = None,
        stream_buffer: int = 64,
        stall_timeout_s: float = 30.0,
        on_idle: Callable[[], object] | None = None,
    ) -> None:
        """`stream_buffer` is the tokens per choice a consumer may fall behind before its
        request is paused; `stall_timeout_s` how long a request stays paused before it is
        cancelled with StreamStalled; `on_idle` runs on the inference thread once it has had
        nothing to do for `IDLE_S` (to hand memory back after a burst)."""
        self._observe_batch = observe_batch or (lambda size: None)
        self._runner = runner
        self._scheduler = scheduler
        self._capacity = Capacity(max_queue)
        self._decode = decode
        self._eos = eos
        self._inbox: queue.Queue[Request | None] = queue.Queue()
        self._finishers: dict[int, Callable[[BaseException | None], None]] = {}
        self._flows: dict[int, StreamFlow] = {}
        self._stream_buffer = stream_buffer
        self._stall_timeout_s = stall_timeout_s
        self._on_idle = on_idle or (lambda: None)
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def outstanding(self) -> int:
        """Requests queued or running."""
        return self._capacity.outstanding

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="loupe-inference", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping = True
            self._inbox.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def generate(
        self, prompt_ids: list[int], payload: object, sampling: SamplingParams, max_tokens: int
    ) -> AsyncGenerator[GenerationEvent, None]:
        """Queue a request and yield its events; closing the iterator cancels the request."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        flow = StreamFlow(limit=self._stream_buffer * sampling.n)

        def emit(event: GenerationEvent) -> None:
            if isinstance(event, TextDelta):
                flow.emitted += event.tokens
            loop.call_soon_threadsafe(events.put_nowait, event)

        def finish(error: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, _DONE if error is None else error)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is waiting
                pass

        request = Request.create(prompt_ids, sampling, max_tokens, self._eos, self._decode, emit, payload)
        self._admit(request, finish, flow)
        try:
            while (item := await events.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
                if isinstance(item, TextDelta):  # the consumer is done with it: it asks for more
                    flow.taken += item.tokens
        finally:
            request.cancelled = True  # read by the inference thread between steps

    def step(self) -> bool:
        """One iteration of continuous batching; False when there was nothing to compute."""
        self._drop_cancelled()
        self._throttle()
        step = self._scheduler.schedule()
        if step.prefill:
            self._guarded(list(step.prefill), lambda: self._prefill(list(step.prefill)))
        seqs = [s for s in step.decode if not s.finished]
        if seqs:
            self._observe_batch(len(seqs))
            requests = list({id(s.request): s.request for s in seqs}.values())
            self._guarded(requests, lambda: self._emit(seqs, self._runner.decode(seqs)))
        return bool(step.prefill or seqs)

    def _throttle(self) -> None:
        """Pause the requests whose consumers fell behind, resume those that caught up, and
        cancel those paused for longer than the stall timeout."""
        now = time.monotonic()
        for request in self._scheduler.running_requests():
            flow = self._flows.get(request.id)
            if flow is None:
                continue
            if not self._scheduler.is_paused(request):
                if flow.full:
                    self._scheduler.pause(request)
                    flow.paused_at = now
            elif flow.caught_up:
                self._scheduler.resume(request)
                flow.paused_at = None
            elif flow.paused_at is not None and now - flow.paused_at >= self._stall_timeout_s:
                for seq in self._scheduler.abort(request):
                    self._runner.release(seq)
                self._done(request, StreamStalled(
                    f"the client read nothing for {self._stall_timeout_s:g} s; the stream was stopped"
                ))

    def _prefill(self, requests: list[Request]) -> None:
        """Prefill these requests together; if that fails, one by one, so only the failing fail."""
        try:
            firsts = self._runner.prefill(requests)
        except Exception:
            if len(requests) == 1:
                raise
            for request in requests:
                self._guarded([request], partial(self._prefill, [request]))
            return
        for request, tokens in zip(requests, firsts, strict=True):
            self._emit(request.sequences, tokens)

    def _emit(self, seqs: list[Sequence], tokens: list[int]) -> None:
        for seq, token in zip(seqs, tokens, strict=True):
            text = seq.append(token)
            # Emitted even when the text is held back (a partial character or stop string), so
            # the tokens generated are known at every moment, e.g. when a client goes away.
            seq.request.emit(TextDelta(index=seq.index, text=text, tokens=1, logprobs=seq.take_logprobs()))
            if seq.finished:
                self._retire(seq)

    def _retire(self, seq: Sequence) -> None:
        tail = seq.stream.finish()
        if tail:
            seq.request.emit(TextDelta(index=seq.index, text=tail, tokens=0))
        assert seq.finish_reason is not None and seq.finish_reason != "cancelled"
        seq.request.emit(ChoiceFinished(index=seq.index, reason=seq.finish_reason, completion_tokens=seq.generated))
        self._scheduler.retire(seq)
        self._runner.release(seq)
        if seq.request.finished:
            self._done(seq.request, None)

    def _guarded(self, requests: list[Request], work: Callable[[], None]) -> None:
        """Run `work`; if it fails, fail these requests (and only these) and carry on."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - the boundary where torch failures become ours
            if not isinstance(exc, LoupeError):
                _log.exception("inference step failed")
            error = exc if isinstance(exc, LoupeError) else EngineFailure(
                "generation failed inside the engine; the server log has details"
            )
            for request in requests:
                for seq in self._scheduler.abort(request):
                    self._runner.release(seq)
                self._done(request, error)

    def _drop_cancelled(self) -> None:
        for request in self._scheduler.requests():
            if request.cancelled or self._stopping:
                for seq in self._scheduler.abort(request):
                    self._runner.release(seq)
                self._done(request, ServiceUnavailable("the engine is closing") if self._stopping else None)

    def _admit(self, request: Request, finish: Callable[[BaseException | None], None], flow: StreamFlow) -> None:
        if self._thread is None or self._stopping:
            raise ServiceUnavailable("the engine is not running")
        self._capacity.take()
        self._finishers[request.id] = finish
        self._flows[request.id] = flow
        self._inbox.put(request)

    def _done(self, request: Request, error: BaseException | None) -> None:
        self._flows.pop(request.id, None)
        finish = self._finishers.pop(request.id, None)
        if finish is None:
            return
        self._capacity.give_back()
        finish(error)

    def _run(self) -> None:
        worked = True
        while not self._stopping:
            if not self._scheduler.idle:  # every running request paused: look again shortly
                self._take_inbox(0 if worked else POLL_S)
            elif not self._take_inbox(IDLE_S):  # idle for a moment: hand memory back, then wait
                self._on_idle()
                self._take_inbox(None)
            worked = self.step()
        self._take_inbox(0)
        self._drop_cancelled()

    def _take_inbox(self, timeout: float | None) -> bool:
        """Move what the inbox holds to the scheduler, waiting up to `timeout` (None: for ever)
        for the first item; False when nothing came."""
        try:
            item = self._inbox.get(block=timeout != 0, timeout=timeout or None)
        except queue.Empty:
            return False
        try:
            while True:
                if item is not None:
                    self._scheduler.add(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True
