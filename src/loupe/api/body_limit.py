"""An ASGI middleware that refuses request bodies over the configured size with a 413."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from loupe.api.errors import error_response
from loupe.errors import RequestTooLarge


class BodyLimit:
    """Checks Content-Length up front and counts streamed bytes for chunked bodies.

    A chunked body that crosses the limit is cut off where it crosses it: the route's own
    answer to the truncated body (FastAPI's "error parsing the body") is replaced by the 413,
    sent with `connection: close` so the rest of the upload is not read.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self._app = app
        self._max = max_bytes

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

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._max:
                    refused = True
                    raise self._error()
            return message

        async def answer(message: Message) -> None:
            if not refused:
                await send(message)
            elif message["type"] == "http.response.start":  # the app's answer to the cut body
                response = error_response(self._error(), headers={"connection": "close"})
                await response(scope, receive, send)

        await self._app(scope, counted, answer)
