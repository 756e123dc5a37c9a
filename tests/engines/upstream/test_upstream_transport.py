"""The upstream client on its production transport (aiohttp under httpx), against real loopback
sockets: every way a replica can fail becomes the right Loupe error, a stream closed early drops
its connection (how the replica learns nobody listens), and a stream read whole keeps it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager

import pytest

from loupe.engines.upstream.client import Chunk, UpstreamClient
from loupe.engines.upstream.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from loupe.engines.upstream.loading import upstream_http

pytestmark = pytest.mark.asyncio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def event(obj: object) -> bytes:
    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def token(text: str) -> bytes:
    return event({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    return await reader.readexactly(length)


class Replica:
    """A loopback server that runs `handler` per connection and counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler, self.connections = handler, 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def replica(handler: Handler) -> AsyncIterator[tuple[str, Replica]]:
    served = Replica(handler)
    server = await asyncio.start_server(served.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", served
    finally:
        server.close()


def client(read_timeout_s: float = 5.0) -> UpstreamClient:
    return UpstreamClient(upstream_http(connect_timeout_s=2.0, read_timeout_s=read_timeout_s, max_connections=8))


async def collect(upstream: UpstreamClient, base: str) -> list[Chunk]:
    async with aclosing(upstream.stream_chat(base, BODY)) as chunks:
        return [chunk async for chunk in chunks]


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:  # keep-alive: one answer per request on the connection
        await read_request(reader)
        writer.write(HEAD + token("Hello") + token(" there") + event(b"[DONE]") + b"0\r\n\r\n")
        await writer.drain()


async def test_a_stream_read_whole_keeps_its_connection_for_the_next() -> None:
    async with replica(answer) as (base, served):
        upstream = client()
        try:
            first = await collect(upstream, base)
            second = await collect(upstream, base)
        finally:
            await upstream.aclose()
    assert [c.text for c in first] == [c.text for c in second] == ["Hello", " there"]
    assert served.connections == 1


async def test_a_stream_closed_early_drops_its_connection() -> None:
    seen_eof = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD)
        while not reader.at_eof():
            writer.write(token("x"))
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1), 0.01)
            except TimeoutError:
                continue
        seen_eof.set()

    async with replica(endless) as (base, _):
        upstream = client()
        try:
            async with aclosing(upstream.stream_chat(base, BODY)) as chunks:
                assert (await anext(chunks)).text == "x"
            await asyncio.wait_for(seen_eof.wait(), 10)
        finally:
            await upstream.aclose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_refused_connection_is_unreachable() -> None:
    upstream = client()
    try:
        with pytest.raises(UpstreamUnavailable, match="cannot be reached"):
            await collect(upstream, f"http://127.0.0.1:{free_port()}/v1")
    finally:
        await upstream.aclose()


async def broken_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(HEAD + token("Hello"))
    await writer.drain()
    writer.transport.abort()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(30)


async def not_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


@pytest.mark.parametrize(
    ("handler", "expected", "words"),
    [
        (broken_mid_stream, UpstreamBadResponse, "connection to the model server broke"),
        (silent, UpstreamTimeout, "did not answer in time"),
        (not_http, UpstreamBadResponse, "broke the HTTP protocol"),
    ],
    ids=["closed mid-stream", "no answer", "not HTTP"],
)
async def test_replica_failures_become_loupe_errors(handler: Handler, expected: type[Exception], words: str) -> None:
    async with replica(handler) as (base, _):
        upstream = client(read_timeout_s=0.5)
        try:
            with pytest.raises(expected, match=words) as caught:
                await collect(upstream, base)
        finally:
            await upstream.aclose()
    assert type(caught.value) is expected
