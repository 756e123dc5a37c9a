"""One HTTP connection, guarded: deadlines for headers, body and stalled writes, and a connection cap.

uvicorn closes idle keep-alive connections and can cap concurrency, but a client that sends
its headers or body one byte at a time, or stops reading a response, holds a connection (and
the request's memory) for as long as it likes. `GuardedProtocol` is uvicorn's httptools
protocol with three timers and a cap:

- headers: from the connection's start (or a later request's first byte) to the end of its
  headers. A request begun and not finished in time is answered 408; a connection that sent
  nothing is closed.
- body: from when the app first asks for the body (a request waiting for the server, such as
  for the body budget, is not the client's delay) to the end of the body, or from the end of
  the response if the app answered without reading it all; past it, 408 if nothing was
  answered yet, and the connection is closed.
- writes: a response the client stops reading pauses the transport once its buffer is full;
  if it stays paused that long, the connection is aborted (its buffered bytes dropped), which
  the app sees as the client going away.
- connections: beyond `max_connections` open at once, every request on a new connection is
  answered 503 in OpenAI's envelope and the connection closed.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from starlette.types import Receive, Scope, Send

from loupe.api.errors import envelope, error_response
from loupe.errors import LoupeError, RequestTimeout, ServiceUnavailable


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Deadlines (seconds) and caps of the HTTP server; see the module's docstring."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keep_alive_s: float = 5.0
    write_timeout_s: float = 30.0
    max_connections: int = 512
    send_buffer_bytes: int = 0  # SO_SNDBUF of each connection; 0 leaves the kernel's own sizing


def raw_error(error: LoupeError, status: int) -> bytes:
    """A complete HTTP/1.1 response carrying `error` in the envelope, closing the connection."""
    body = json.dumps(envelope(error), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


_REASONS = {408: "Request Timeout", 503: "Service Unavailable"}


async def over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    """The app a connection beyond the cap gets: 503, retry shortly, and close."""
    error = ServiceUnavailable("the server has too many open connections; retry shortly")
    await error_response(error, headers={"connection": "close", "retry-after": "1"})(scope, receive, send)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the cap of `limits`."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[GuardedProtocol]:
        return type("GuardedProtocol", (cls,), {"limits": limits})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        self._begun = False  # bytes of the current request have arrived

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        limits = self.limits
        if len(self.connections) > limits.max_connections:
            self.app = over_capacity
        if limits.send_buffer_bytes:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.send_buffer_bytes)
        self._header_timer = self.loop.call_later(limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer, self._write_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._write_timer = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._header_timer = self.loop.call_later(self.limits.header_timeout_s, self._headers_late)

    def on_headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None:
            receive = cycle.receive

            async def timed() -> Any:
                self._time_body(cycle)
                return await receive()

            cycle.receive = timed  # type: ignore[method-assign]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle is not None:
            self._time_body(self.cycle)

    def _time_body(self, cycle: RequestResponseCycle) -> None:
        """Start the body's deadline, once, if this request's body is still arriving."""
        if cycle is self.cycle and cycle.more_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s, self._body_late)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._begun = False
        super().on_message_complete()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.write_timeout_s, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self._begun and not self.transport.is_closing():
            seconds = self.limits.header_timeout_s
            self.transport.write(raw_error(RequestTimeout(f"the request headers took longer than {seconds:g} s"), 408))
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None:
            self.transport.close()
            return
        if not cycle.response_started and not self.transport.is_closing():
            seconds = self.limits.body_timeout_s
            self.transport.write(raw_error(RequestTimeout(f"the request body took longer than {seconds:g} s"), 408))
        cycle.disconnected = True  # the app's receive() sees the client gone; its answer is dropped
        cycle.message_event.set()
        self.transport.close()

    def _write_stalled(self) -> None:
        self._write_timer = None
        self.transport.abort()  # buffered bytes dropped; connection_lost tells the app
