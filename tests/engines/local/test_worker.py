"""The inference thread: ordering, errors, the bounded queue, cancellation and slow consumers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from loupe.engines.local.worker import InferenceWorker
from loupe.errors import EngineFailure, InvalidRequest, ServiceUnavailable, StreamStalled


@pytest.fixture
def worker() -> InferenceWorker:
    w = InferenceWorker(max_queue=2)
    w.start()
    yield w
    w.stop()


def test_jobs_run_on_one_named_thread(worker: InferenceWorker) -> None:
    names = asyncio.run(worker.call(lambda: threading.current_thread().name))
    assert names == "loupe-inference"


def test_stream_yields_events_in_order(worker: InferenceWorker) -> None:
    def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
        for i in range(5):
            emit(i)

    async def collect() -> list[int]:
        return [e async for e in worker.stream(job)]

    assert asyncio.run(collect()) == [0, 1, 2, 3, 4]


def test_loupe_errors_pass_through_and_others_become_engine_failures(worker: InferenceWorker) -> None:
    def bad_request() -> None:
        raise InvalidRequest("no")

    def crash() -> None:
        raise RuntimeError("secret internals")

    with pytest.raises(InvalidRequest):
        asyncio.run(worker.call(bad_request))
    with pytest.raises(EngineFailure) as caught:
        asyncio.run(worker.call(crash))
    assert "secret internals" not in caught.value.message
    assert asyncio.run(worker.call(lambda: 42)) == 42  # the thread survived both


def test_full_queue_is_refused_with_service_unavailable(worker: InferenceWorker) -> None:
    release = threading.Event()

    def blocker(emit: Callable[[int], None], cancelled: threading.Event) -> None:
        release.wait(10)

    async def scenario() -> None:
        first = asyncio.ensure_future(_drain(worker, blocker))
        second = asyncio.ensure_future(_drain(worker, blocker))
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceUnavailable):
            await _drain(worker, blocker)
        release.set()
        await asyncio.gather(first, second)
        assert worker.outstanding == 0

    asyncio.run(scenario())


def test_closing_the_stream_sets_the_cancel_flag(worker: InferenceWorker) -> None:
    seen_cancel = threading.Event()

    def job(emit: Callable[[int], None], cancelled: threading.Event) -> None:
        i = 0
        while not cancelled.wait(0.01):
            emit(i)
            i += 1
        seen_cancel.set()

    async def scenario() -> None:
        stream = worker.stream(job)
        assert await anext(stream) == 0
        await stream.aclose()

    asyncio.run(scenario())
    assert seen_cancel.wait(5)


def test_not_started_worker_refuses() -> None:
    with pytest.raises(ServiceUnavailable):
        asyncio.run(InferenceWorker(max_queue=1).call(lambda: 1))


async def _drain(worker: InferenceWorker, job: Callable[..., None]) -> None:
    async for _ in worker.stream(job):
        pass


def test_a_job_waits_for_a_consumer_that_fell_behind_and_fails_when_it_stalls(worker: InferenceWorker) -> None:
    emitted: list[int] = []

    def endless(emit: Callable[[int], None], cancelled: threading.Event) -> None:
        while not cancelled.is_set():
            emitted.append(len(emitted))
            emit(emitted[-1])

    async def scenario() -> None:
        stream = worker.stream(endless, limit=5, stall_timeout_s=0.3)
        assert await anext(stream) == 0
        for _ in range(200):  # the job blocks in its emit once 5 events wait
            await asyncio.sleep(0.01)
        assert len(emitted) <= 6
        taken = [e async for e in _until_error(stream)]
        assert taken == list(range(1, len(emitted)))  # what was emitted, in order, then the error

    asyncio.run(scenario())


async def _until_error(stream: AsyncIterator[int]) -> AsyncIterator[int]:
    with pytest.raises(StreamStalled):
        async for event in stream:
            yield event
