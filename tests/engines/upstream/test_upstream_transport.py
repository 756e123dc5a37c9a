"""The upstream client on its production transport (aiohttp under httpx), against real loopback
sockets: every way a replica can fail becomes the right Loupe error, a stream closed early drops
its connection (how the replica learns nobody listens), and a stream read whole keeps it."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import pytest
import trustme

from loupe.engines.upstream.client import Chunk, UpstreamClient
from loupe.engines.upstream.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from loupe.engines.upstream.loading import upstream_http
from loupe.errors import ConfigError

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
async def replica(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, Replica]]:
    served = Replica(handler)
    server = await asyncio.start_server(served.serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}/v1", served
    finally:
        server.close()


def client(read_timeout_s: float = 5.0, ca_file: str | None = None) -> UpstreamClient:
    http = upstream_http(connect_timeout_s=2.0, read_timeout_s=read_timeout_s, max_connections=8, ca_file=ca_file)
    return UpstreamClient(http)


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


async def endless_event(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(HEAD + token("Hello"))
    piece = b"x" * 65536
    while True:  # one event that never ends
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await writer.drain()


@pytest.mark.parametrize(
    ("handler", "expected", "words"),
    [
        (endless_event, UpstreamBadResponse, "stream event larger than Loupe takes"),
        (broken_mid_stream, UpstreamBadResponse, "connection to the model server broke"),
        (silent, UpstreamTimeout, "did not answer in time"),
        (not_http, UpstreamBadResponse, "broke the HTTP protocol"),
    ],
    ids=["endless event", "closed mid-stream", "no answer", "not HTTP"],
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


def server_tls(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    return context


async def test_an_https_replica_is_checked_against_the_configured_authorities(tmp_path: Path) -> None:
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with replica(answer, server_tls(authority)) as (base, _):
        trusted, untrusted = client(ca_file=str(ca_file)), client()
        try:
            assert [c.text for c in await collect(trusted, base)] == ["Hello", " there"]
            with pytest.raises(UpstreamUnavailable, match="TLS certificate was not accepted"):
                await collect(untrusted, base)  # the default authorities do not know this one
        finally:
            await trusted.aclose()
            await untrusted.aclose()


async def test_a_ca_file_that_is_not_pem_stops_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ConfigError, match="cannot be read as PEM certificates"):
            upstream_http(connect_timeout_s=1.0, read_timeout_s=1.0, max_connections=1, ca_file=str(path))


async def test_a_failing_health_check_is_logged_when_it_starts_to_fail_not_at_every_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    refusing = True

    async def models(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            body = b'{"error": {"message": "no key"}}' if refusing else b'{"object": "list", "data": [{"id": "m"}]}'
            status = b"401 Unauthorized" if refusing else b"200 OK"
            writer.write(b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()

    async with replica(models) as (base, _):
        upstream = client()
        try:
            with caplog.at_level("WARNING", logger="loupe.engines.upstream.client"):
                assert await upstream.served(base, "m") is None
                assert await upstream.served(base, "m") is None
                refusing = False
                assert await upstream.served(base, "m") is not None
                refusing = True
                assert await upstream.served(base, "m") is None
        finally:
            await upstream.aclose()
    logged = [r for r in caplog.records if "refused Loupe's credentials (HTTP 401)" in r.getMessage()]
    assert len(logged) == 2  # once when it started, once again after it had recovered
    assert all(r.levelname == "ERROR" for r in logged)
