"""The idle callback (memory handed back after a burst) runs once the server is quiet, never while
a request is in progress, and once per quiet spell."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from loupe.api.idle import WhenIdle
from loupe.billing.tables import processes
from loupe.compose import build_app
from loupe.compose_billing import open_billing
from loupe.engines.local.cpu_heap import give_back_freed_memory
from loupe.service.metrics import Metrics
from loupe.settings import load_settings

AFTER_S = 0.05


class Calls:
    def __init__(self) -> None:
        self.threads: list[str] = []

    def __call__(self) -> None:
        self.threads.append(threading.current_thread().name)


def guarded_app(calls: Calls, hold: asyncio.Event) -> WhenIdle:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            await hold.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return WhenIdle(app, on_idle=calls, after_s=AFTER_S)


async def request(app: WhenIdle, path: str) -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        pass

    await app({"type": "http", "path": path, "headers": []}, receive, send)  # type: ignore[arg-type]


async def quiet_for(seconds: float) -> None:
    await asyncio.sleep(seconds)


def test_it_runs_once_after_the_last_request_on_a_thread_of_its_own() -> None:
    calls = Calls()

    async def scenario() -> None:
        app = guarded_app(calls, asyncio.Event())
        await asyncio.gather(*(request(app, "/") for _ in range(5)))
        assert calls.threads == []  # not at once: a burst may go on
        await quiet_for(AFTER_S * 6)
        assert len(calls.threads) == 1
        assert calls.threads[0] != threading.current_thread().name  # not on the event loop
        await quiet_for(AFTER_S * 4)
        assert len(calls.threads) == 1  # once per quiet spell

    asyncio.run(scenario())


def test_it_waits_for_a_request_in_progress_and_runs_after_it() -> None:
    calls = Calls()

    async def scenario() -> None:
        hold = asyncio.Event()
        app = guarded_app(calls, hold)
        await request(app, "/")
        slow = asyncio.create_task(request(app, "/slow"))
        await quiet_for(AFTER_S * 6)
        assert calls.threads == []  # a stream still being answered holds its memory
        hold.set()
        await slow
        await quiet_for(AFTER_S * 6)
        assert len(calls.threads) == 1

    asyncio.run(scenario())


def test_requests_that_keep_coming_put_it_off() -> None:
    calls = Calls()

    async def scenario() -> None:
        app = guarded_app(calls, asyncio.Event())
        for _ in range(8):
            await request(app, "/")
            await asyncio.sleep(AFTER_S / 4)
        assert calls.threads == []
        await quiet_for(AFTER_S * 6)
        assert len(calls.threads) == 1

    asyncio.run(scenario())


def test_the_served_app_hands_freed_memory_back_when_idle(tmp_path: Path) -> None:
    settings = load_settings(overrides={"db": f"sqlite:///{tmp_path / 'k.db'}"}).model_copy(update={"models": ()})
    billing = open_billing(settings)
    app = build_app(settings, {}, billing, Metrics())

    def state() -> tuple[bool, int]:
        with billing.db.read() as conn:
            rows = conn.execute(sa.select(sa.func.count()).select_from(processes)).scalar_one()
        return "loupe-heartbeat" in {t.name for t in threading.enumerate()}, rows

    assert state() == (False, 0)  # built, not running: neither registered nor beating
    with TestClient(app):  # its lifespan registers this process and starts the heartbeat...
        assert state() == (True, 1)
    assert state() == (False, 0)  # ...and stopping it retires both
    idle = [m for m in app.user_middleware if m.cls is WhenIdle]
    assert len(idle) == 1 and idle[0].kwargs["on_idle"] is give_back_freed_memory
    assert app.user_middleware[0].cls is WhenIdle  # outermost: it sees every request to its end
