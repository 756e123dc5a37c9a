"""An ASGI middleware that refuses request bodies over the configured size with a 413, and
bounds the bytes of bodies that requests in progress hold at once."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loupe.api.errors import error_response
from loupe.errors import RequestTooLarge
from loupe.service.budget import MemoryBudget


class BodyLimit:
    """Checks Content-Length up front and counts streamed bytes for chunked bodies.

    A chunked body that crosses the limit is cut off where it crosses it: the route's own
    answer to the truncated body (FastAPI's "error parsing the body") is replaced by the 413,
    sent with `connection: close` so the rest of the upload is not read.

    A request holds its body's bytes against `budget` (taken before they are read, as declared
    or as chunks arrive) until its response is complete: the parsed body lives that long. Past
    the budget, requests wait unread, in arrival order.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, budget: MemoryBudget | None = None) -> None:
        self._app = app
        self._max = max_bytes
        self._budget = budget or MemoryBudget(0)

    def _error(self) -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body is larger than {self._max} bytes; send smaller images or image URLs"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max:
            await error_response(self._error())(scope, receive, send)
            return
        seen = 0
        refused = False
        lease = self._budget.lease()
        if declared is not None and declared.isdigit():
            await lease.take(int(declared))

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                seen += size
                if seen > self._max:
                    refused = True
                    raise self._error()
                if declared is None:
                    await lease.take(size)
            return message

        async def answer(message: Message) -> None:
            if not refused:
                await send(message)
            elif message["type"] == "http.response.start":  # the app's answer to the cut body
                response = error_response(self._error(), headers={"connection": "close"})
                await response(scope, receive, send)

        try:
            await self._app(scope, counted, answer)
        finally:
            lease.release()
