"""The image budget: leases beyond it wait in order, a larger one runs alone, nothing leaks."""

from __future__ import annotations

import asyncio

import pytest

from loupe.service.budget import MemoryBudget, image_cost


def test_leases_beyond_the_budget_wait_in_arrival_order() -> None:
    async def scenario() -> None:
        budget = MemoryBudget(100)
        first, second, third = budget.lease(), budget.lease(), budget.lease()
        await first.take(60)
        waiting = [asyncio.create_task(second.take(60)), asyncio.create_task(third.take(10))]
        await asyncio.sleep(0)
        assert not any(t.done() for t in waiting) and budget.used == 60  # the small one waits its turn
        first.release()
        first.release()  # idempotent
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert budget.used == 70

    asyncio.run(scenario())


def test_a_lease_larger_than_the_budget_runs_alone_and_cancelled_waits_give_back() -> None:
    async def scenario() -> None:
        budget = MemoryBudget(100)
        huge, small = budget.lease(), budget.lease()
        await huge.take(10_000)
        assert budget.used == 100
        waiting = asyncio.create_task(small.take(1))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        huge.release()
        small.release()
        assert budget.used == 0
        unbounded = MemoryBudget(0).lease()
        await unbounded.take(10**12)  # 0 means no bound

    asyncio.run(scenario())


def test_an_image_costs_its_decoded_pixels_and_its_pixel_values() -> None:
    assert image_cost((2000, 1000), (448, 448)) == 2000 * 1000 * 3 + 448 * 448 * 24
