"""Which threads keep torch's parallel workers on the CPU.

torch runs its CPU operators in parallel through OpenMP (GNU libgomp in the published wheels):
each thread that enters a parallel region gets a team of worker threads of its own, kept for as
long as that thread lives. Once a process keeps more such workers than it has cores, libgomp
stops letting idle workers spin and puts them to sleep at once, so every short parallel region
then pays for waking its team. Measured on a 2-core AMD EPYC (bfloat16, SmolVLM-256M-size): a
batch-8 decode step on the inference thread took 51.6 ms after the weights had been loaded on
the main thread, and 38.9 ms when they were loaded on a thread that had ended; one 576 x 1,536
product of 8 rows, 141 us against 69.

So the inference thread is the only long-lived thread with a team: the weights are loaded, and
requests are prepared, on threads that end when their work is done.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["OneAtATime", "in_a_thread_of_its_own"]

T = TypeVar("T")


def in_a_thread_of_its_own(work: Callable[[], T], name: str = "loupe-load") -> T:
    """Run `work` on a new thread and wait for it; whatever workers it started end with it."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


class OneAtATime(Executor):
    """Runs each submitted call on a new thread, one call at a time in the order submitted (as a
    pool of one worker would), so no thread keeps parallel workers between calls."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._state = threading.Condition()
        self._queue: deque[_Call] = deque()  # the running call first, then those waiting
        self._shut = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        call = _Call(Future(), fn, args, kwargs)
        with self._state:
            if self._shut:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.append(call)
            if len(self._queue) == 1:
                self._start(call)
        return call.future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._state:
            self._shut = True
            if cancel_futures:
                for call in list(self._queue)[1:]:
                    call.future.cancel()
            if wait:
                self._state.wait_for(lambda: not self._queue)

    def _start(self, call: _Call) -> None:
        threading.Thread(target=self._run, args=(call,), name=self._name, daemon=True).start()

    def _run(self, call: _Call) -> None:
        if call.future.set_running_or_notify_cancel():
            try:
                call.future.set_result(call.fn(*call.args, **call.kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
                call.future.set_exception(exc)
        with self._state:
            self._queue.popleft()
            while self._queue and self._queue[0].future.cancelled():
                self._queue.popleft()
            if self._queue:
                self._start(self._queue[0])
            self._state.notify_all()


@dataclass(frozen=True, slots=True)
class _Call:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
