"""An ASGI middleware that runs a callback once the server has answered everything it was asked
and nothing new has come for a moment: the place to hand a burst's freed memory back.

The engine hands memory back when its own loop goes idle, but a request refused before it
reaches an engine (a 49 MB body of text, a batch of images refused at intake) leaves what its
parsing freed in the process heap. Here every HTTP request counts, from its first byte to the
end of its response, and the callback runs on a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send


class WhenIdle:
    """Calls `on_idle` (in a thread) once no HTTP request has been in progress for `after_s`."""

    def __init__(self, app: ASGIApp, on_idle: Callable[[], object], after_s: float = 1.0) -> None:
        self._app = app
        self._on_idle = on_idle
        self._after_s = after_s
        self._in_progress = 0
        self._started = 0  # requests begun so far: a later count means the quiet was broken
        self._pending: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        self._in_progress += 1
        self._started += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_progress -= 1
            if self._in_progress == 0 and self._pending is None:
                self._pending = asyncio.get_running_loop().create_task(self._after_quiet())

    async def _after_quiet(self) -> None:
        try:
            while True:
                seen = self._started
                await asyncio.sleep(self._after_s)
                if self._in_progress:
                    return  # the request in progress schedules the next wait when it ends
                if self._started == seen:
                    break
            await asyncio.to_thread(self._on_idle)
        finally:
            self._pending = None
