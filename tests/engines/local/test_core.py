"""The batching loop with a fake runner: events, the bounded queue and cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from loupe.domain import ChoiceFinished, SamplingParams, TextDelta
from loupe.engines.local.core import EngineCore
from loupe.engines.local.scheduler import Scheduler
from loupe.engines.local.sequence import Request, Sequence
from loupe.errors import EngineFailure, ServiceUnavailable


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
