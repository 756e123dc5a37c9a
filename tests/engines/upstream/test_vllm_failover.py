"""Two vLLM replicas under a steady load; one is killed (its engine process with it), then started
again on its port.

No request that had not started streaming may fail (it is retried on the survivor); the dead
replica is taken out, and once it answers again the health probe brings it back into service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.upstream_vllm import VllmServer
from loupe.engines.upstream import load_upstream_model
from tests.engines.upstream.conftest import VllmServers
from tests.engines.upstream.upstream_support import ask, eventually, gateway, one_request
from tests.helpers import photo_url

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture
def replicas(vllm: VllmServers) -> Iterator[tuple[VllmServer, VllmServer]]:
    survivor = vllm.get("qwen2-vl")  # shared with the other vLLM tests
    doomed = vllm.new("qwen2-vl")  # this test's own
    try:
        yield survivor, doomed
    finally:
        doomed.stop()


@pytest.mark.asyncio
async def test_killing_a_vllm_replica_fails_no_request_that_had_not_streamed(
    replicas: tuple[VllmServer, VllmServer], vllm_checkpoint: Callable[[str], Path]
) -> None:
    survivor, doomed = replicas
    engine, counter = load_upstream_model(
        "gw", str(vllm_checkpoint("qwen2-vl")), [survivor.api, doomed.api], survivor.name,
        context_size=None, max_images=1, budget=256, health_interval_s=0.3,
    )  # fmt: skip
    chat = gateway(engine, counter)
    await engine.start()
    outcomes: list[str] = []
    request = ask("gw", "Say something long.", (photo_url("bus.jpg"), "low"), max_tokens=24, temperature=0.7)
    stop = asyncio.Event()

    async def worker() -> None:
        while not stop.is_set():
            await one_request(chat, request, outcomes)

    workers = [asyncio.create_task(worker()) for _ in range(6)]
    try:
        killed = engine.pool.replicas[1]
        assert await eventually(lambda: killed.outstanding > 0, 30.0), "the load reaches both replicas"
        await asyncio.to_thread(doomed.kill)
        assert await eventually(lambda: killed.ejected, 10.0), "the dead replica is taken out of service"
        served = len(outcomes)
        assert await eventually(lambda: len(outcomes) >= served + 6, 60.0), "the survivor keeps serving"

        await asyncio.to_thread(doomed.start)
        assert await eventually(lambda: not killed.ejected, 10.0), "the restarted replica is probed back in"
        assert await eventually(lambda: killed.outstanding > 0, 30.0), "and takes requests again"
    finally:
        stop.set()
        await asyncio.gather(*workers)
        await engine.close()

    print({outcome: outcomes.count(outcome) for outcome in set(outcomes)}, engine.counters, engine.pool.ejections)
    assert "failed before streaming" not in outcomes
    assert engine.pool.ejections >= 1 and engine.usage_mismatches == 0
