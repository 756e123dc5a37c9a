"""One inference thread for every torch call, bridged to asyncio.

Torch work runs on a single thread (CUDA graphs and compiled models keep thread-local state, and
one thread keeps the global RNG that `seed` sets private to the job that set it). Jobs run in
submission order; a job streams events back to the event loop, and sees a cancellation flag that
is set when its consumer goes away. A job whose consumer falls `limit` events behind waits in
its `emit` until the consumer catches up (see `flow`), or fails with StreamStalled.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from loupe.engines.local.capacity import Capacity
from loupe.engines.local.flow import IDLE_S, POLL_S, StreamFlow
from loupe.errors import EngineFailure, LoupeError, ServiceUnavailable, StreamStalled

E = TypeVar("E")
Emit = Callable[[E], None]
Job = Callable[[Emit[E], threading.Event], None]

_DONE = object()
_log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Ticket(Generic[E]):
    job: Job[E]
    emit: Emit[E]
    finish: Callable[[BaseException | None], None]
    cancelled: threading.Event = field(default_factory=threading.Event)


class InferenceWorker:
    """Runs jobs on one daemon thread; `stream` yields what a job emits."""

    def __init__(
        self, max_queue: int, name: str = "loupe-inference", on_idle: Callable[[], object] | None = None
    ) -> None:
        """`on_idle` runs on the thread once it has had no job for `IDLE_S`."""
        self._on_idle = on_idle or (lambda: None)
        self._capacity = Capacity(max_queue)
        self._name = name
        self._tickets: queue.Queue[_Ticket[object] | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def outstanding(self) -> int:
        """Jobs queued or running."""
        return self._capacity.outstanding

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._tickets.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def stream(
        self, job: Job[E], limit: int | None = None, stall_timeout_s: float = 30.0
    ) -> AsyncGenerator[E, None]:
        """Queue `job` and yield its events; raises what the job raised (LoupeErrors as they are).

        With a `limit`, the job's `emit` blocks while the consumer is `limit` events behind, and
        raises StreamStalled (ending the job) once it has waited `stall_timeout_s`.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[object] = asyncio.Queue()
        flow = StreamFlow(limit) if limit else None

        def emit(event: E) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)
            if flow is not None:
                flow.emitted += 1
                _wait_for_consumer(flow, ticket.cancelled, stall_timeout_s)

        def finish(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(events.put_nowait, _DONE if error is None else error)

        ticket: _Ticket[E] = _Ticket(job=job, emit=emit, finish=finish)
        self._enqueue(ticket)
        try:
            while True:
                item = await events.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
                if flow is not None:
                    flow.taken += 1
        finally:
            ticket.cancelled.set()

    async def call(self, fn: Callable[[], E]) -> E:
        """Run `fn` on the inference thread and return its result."""
        result: list[E] = []

        def job(emit: Emit[E], cancelled: threading.Event) -> None:
            emit(fn())

        async for value in self.stream(job):
            result.append(value)
        return result[0]

    def _enqueue(self, ticket: _Ticket[E]) -> None:
        if self._thread is None:
            raise ServiceUnavailable("the engine is not running")
        self._capacity.take()
        self._tickets.put(ticket)  # type: ignore[arg-type]

    def _next(self) -> _Ticket[object] | None:
        try:
            return self._tickets.get(timeout=IDLE_S)
        except queue.Empty:
            self._on_idle()
            return self._tickets.get()

    def _run(self) -> None:
        while (ticket := self._next()) is not None:
            error: BaseException | None = None
            try:
                if not ticket.cancelled.is_set():
                    ticket.job(ticket.emit, ticket.cancelled)
            except LoupeError as exc:
                error = exc
            except Exception:  # noqa: BLE001 - the boundary where torch failures become ours
                _log.exception("inference job failed")
                error = EngineFailure("generation failed inside the engine; the server log has details")
            finally:
                self._capacity.give_back()
            try:
                ticket.finish(error)
            except RuntimeError:  # the event loop is gone (shutdown): nobody is waiting
                pass


def _wait_for_consumer(flow: StreamFlow, cancelled: threading.Event, stall_timeout_s: float) -> None:
    """Block the job while its consumer is too far behind (see `flow`)."""
    if not flow.full:
        return
    deadline = time.monotonic() + stall_timeout_s
    while not flow.caught_up and not cancelled.is_set():
        if time.monotonic() >= deadline:
            raise StreamStalled(f"the client read nothing for {stall_timeout_s:g} s; the stream was stopped")
        cancelled.wait(POLL_S)
