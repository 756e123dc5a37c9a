"""Request bodies held at once are bounded: past the budget, a request waits unread."""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Scope, Send

from loupe.api.body_limit import BodyLimit
from loupe.service.budget import MemoryBudget


def test_a_body_past_the_budget_is_not_read_until_an_earlier_request_completes() -> None:
    read: list[int] = []

    async def scenario() -> None:
        hold = asyncio.Event()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            message = await receive()
            read.append(len(message["body"]))
            await hold.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        budget = MemoryBudget(100)
        guarded = BodyLimit(app, max_bytes=1000, budget=budget)

        async def request(size: int) -> list[dict[str, object]]:
            sent: list[dict[str, object]] = []
            scope = {"type": "http", "headers": [(b"content-length", str(size).encode())]}

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": b"x" * size, "more_body": False}

            async def send(message: dict[str, object]) -> None:
                sent.append(message)

            await guarded(scope, receive, send)  # type: ignore[arg-type]
            return sent

        first, second = asyncio.create_task(request(60)), asyncio.create_task(request(60))
        for _ in range(20):
            await asyncio.sleep(0)
        assert read == [60] and budget.used == 60  # the second waits, its body unread
        hold.set()
        answers = await asyncio.wait_for(asyncio.gather(first, second), 5)
        assert read == [60, 60] and budget.used == 0
        assert all(a[0]["status"] == 200 for a in answers)

    asyncio.run(scenario())
