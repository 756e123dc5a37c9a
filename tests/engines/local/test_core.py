"""The batching loop with a fake runner: events, the bounded queue, cancellation and slow consumers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from loupe.domain import ChoiceFinished, SamplingParams, TextDelta
from loupe.engines.local.core import EngineCore
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.sequence import Request, Sequence
from loupe.errors import EngineFailure, ServiceUnavailable, StreamStalled


class CountingRunner:
    """Emits token 1, 2, 3, ...; records every decode batch; can be held or made to fail."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.released: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = False

    def prefill(self, requests: list[Request]) -> list[list[int]]:
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("boom")
        return [[1] * len(request.sequences) for request in requests]

    def decode(self, seqs: list[Sequence]) -> list[int]:
        self.gate.wait(10)
        self.batches.append(len(seqs))
        return [s.generated + 1 for s in seqs]

    def release(self, seq: Sequence) -> None:
        self.released.append(seq.id)


def core(runner: CountingRunner, max_queue: int = 8) -> EngineCore:
    engine = EngineCore(runner, Scheduler(max_running=8, prefill_budget=1000), max_queue, lambda ids: " ".join(map(str, ids)), frozenset({0}))
    engine.start()
    return engine


def test_concurrent_requests_share_decode_steps() -> None:
    runner = CountingRunner()
    engine = core(runner)

    async def one(n: int) -> list[object]:
        return [e async for e in engine.generate([5, 6], None, SamplingParams(n=n), 6)]

    async def scenario() -> list[list[object]]:
        return list(await asyncio.gather(one(1), one(2), one(1)))

    try:
        results = asyncio.run(scenario())
    finally:
        engine.stop()
    assert max(runner.batches) > 1
    for events, n in zip(results, (1, 2, 1), strict=True):
        assert sum(e.tokens for e in events if isinstance(e, TextDelta)) == 6 * n
        assert sorted(e.index for e in events if isinstance(e, ChoiceFinished)) == list(range(n))
    assert engine.outstanding == 0


def test_full_queue_refuses_and_cancel_frees_the_slot() -> None:
    runner = CountingRunner()
    engine = core(runner, max_queue=1)

    async def scenario() -> None:
        stream = engine.generate([1], None, SamplingParams(), 10_000)
        assert isinstance(await anext(stream), TextDelta)
        with pytest.raises(ServiceUnavailable):
            await anext(engine.generate([1], None, SamplingParams(), 2))
        await stream.aclose()
        for _ in range(200):
            if engine.outstanding == 0:
                break
            await asyncio.sleep(0.01)
        assert engine.outstanding == 0
        assert [e async for e in engine.generate([1], None, SamplingParams(), 2)][-1] == ChoiceFinished(0, "length", 2)

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()


def test_a_failing_prefill_fails_only_its_request() -> None:
    runner = CountingRunner()
    engine = core(runner)

    async def scenario() -> None:
        runner.fail = True
        with pytest.raises(EngineFailure) as caught:
            [e async for e in engine.generate([1], None, SamplingParams(), 2)]
        assert "boom" not in caught.value.message
        runner.fail = False
        assert len([e async for e in engine.generate([1], None, SamplingParams(), 2)]) == 3

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()


class TallyingRunner(CountingRunner):
    """Also remembers how many tokens each request has generated, by its prompt's first id."""

    def __init__(self) -> None:
        super().__init__()
        self.generated: dict[int, int] = {}

    def decode(self, seqs: list[Sequence]) -> list[int]:
        tokens = super().decode(seqs)
        for seq in seqs:
            self.generated[seq.request.prompt_ids[0]] = seq.generated + 1
        return tokens


def buffered_core(runner: CountingRunner, buffer: int, stall_timeout_s: float = 30.0) -> EngineCore:
    scheduler = Scheduler(max_running=8, prefill_budget=1000)
    engine = EngineCore(
        runner, scheduler, 8, lambda ids: " ".join(map(str, ids)), frozenset({0}),
        stream_buffer=buffer, stall_timeout_s=stall_timeout_s,
    )
    engine.start()
    return engine


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def test_a_consumer_that_stops_reading_pauses_only_its_request() -> None:
    runner = TallyingRunner()
    engine = buffered_core(runner, buffer=8)

    async def scenario() -> None:
        slow = engine.generate([1], None, SamplingParams(), 400)
        assert isinstance(await anext(slow), TextDelta)
        fast = [e async for e in engine.generate([2], None, SamplingParams(), 400)]
        assert sum(e.tokens for e in fast if isinstance(e, TextDelta)) == 400  # never held back
        assert runner.generated[1] <= 8 + 2  # paused at its buffer
        rest = [e async for e in slow]  # reading again resumes it
        assert 1 + sum(e.tokens for e in rest if isinstance(e, TextDelta)) == 400

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()
    assert engine.outstanding == 0


def test_a_stream_paused_past_the_stall_timeout_is_cancelled() -> None:
    runner = TallyingRunner()
    engine = buffered_core(runner, buffer=4, stall_timeout_s=0.2)

    async def scenario() -> None:
        stalled = engine.generate([1], None, SamplingParams(), 10_000)
        await anext(stalled)
        await wait_until(lambda: engine.outstanding == 0)  # its slot is given back
        buffered = []
        with pytest.raises(StreamStalled):
            async for event in stalled:  # what was generated before it stopped, then the error
                buffered.append(event)
        assert 1 + sum(e.tokens for e in buffered if isinstance(e, TextDelta)) <= 4 + 1
        assert [e async for e in engine.generate([1], None, SamplingParams(), 2)][-1] == ChoiceFinished(0, "length", 2)

    try:
        asyncio.run(scenario())
    finally:
        engine.stop()


def test_the_idle_engine_hands_memory_back_once_after_a_burst() -> None:
    idled = threading.Event()
    scheduler = Scheduler(max_running=8, prefill_budget=1000)
    engine = EngineCore(CountingRunner(), scheduler, 8, lambda ids: "", frozenset({0}), on_idle=idled.set)
    engine.start()

    async def scenario() -> None:
        await asyncio.gather(*(_drain(engine.generate([1], None, SamplingParams(), 5)) for _ in range(3)))

    try:
        asyncio.run(scenario())
        assert idled.wait(10)
    finally:
        engine.stop()


async def _drain(events: object) -> None:
    async for _ in events:  # type: ignore[attr-defined]
        pass
