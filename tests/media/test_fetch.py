from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import httpx
import pytest

from loupe.errors import ImageFetchFailed, ImageFileExceedsMaxSize, ImageUrlForbidden
from loupe.media.address_policy import IPAddress
from loupe.media.fetch import ImageFetcher, network_transport
from loupe.media.limits import ImageLimits

from .support import PHOTO, Certificate, LocalServer, RecordingTransport, StubResolver

T = TypeVar("T")
PUBLIC_IP = "93.184.216.34"  # never contacted: these tests answer from a recording transport
NAMES = {
    "images.example": [PUBLIC_IP],
    "other.example": ["93.184.216.35"],
    "evil.test": ["10.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "loop.test": ["127.0.0.1"],
    "mixed.test": [PUBLIC_IP, "192.168.0.1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "v6loop.test": ["::1"],
}
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def fetcher(
    transport: httpx.AsyncBaseTransport, resolver: StubResolver | None = None, **limits: object
) -> ImageFetcher:
    return ImageFetcher(
        ImageLimits(**limits),  # type: ignore[arg-type]
        transport=transport,
        resolver=resolver or StubResolver(NAMES),
    )


def ok(content: bytes = PNG, **headers: str) -> httpx.Response:
    return httpx.Response(200, content=content, headers=headers)


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


# -- checked before any request ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::1]/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://loop.test/a.png",
        "http://evil.test/a.png",
        "http://meta.test/a.png",
        "http://mixed.test/a.png",
        "http://mapped.test/a.png",
        "https://v6loop.test/a.png",
        "file:///etc/passwd",
        "ftp://images.example/a.png",
        "gopher://images.example/",
        "data:text/plain;base64,aGk=",
        "http://user:pw@images.example/a.png",
        "http:\\\\127.0.0.1\\x",
        "http://example.com\\@127.0.0.1/",
    ],
)
def test_forbidden_urls_send_no_request(recording: RecordingTransport, url: str) -> None:
    with pytest.raises(ImageUrlForbidden):
        run(fetcher(recording).fetch(url))
    assert recording.requests == []


def test_ip_literals_are_not_resolved(recording: RecordingTransport) -> None:
    resolver = StubResolver(NAMES)
    with pytest.raises(ImageUrlForbidden):
        run(fetcher(recording, resolver).fetch("http://2130706433/"))
    assert resolver.calls == []


def test_unresolvable_name(recording: RecordingTransport) -> None:
    with pytest.raises(ImageFetchFailed, match="does not resolve"):
        run(fetcher(recording).fetch("http://nowhere.example/a.png"))
    assert recording.requests == []


def test_domain_allow_list(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = ok()
    allowed = fetcher(recording, allowed_domains=("images.example",))
    assert run(allowed.fetch("http://images.example/a.png")) == PNG
    with pytest.raises(ImageUrlForbidden):
        run(allowed.fetch("http://other.example/a.png"))
    assert len(recording.requests) == 1


# -- the request is pinned to the resolved address -----------------------------------------------


def test_http_request_goes_to_the_resolved_ip(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = ok()
    resolver = StubResolver(NAMES)
    assert run(fetcher(recording, resolver).fetch("http://images.example/a.png?v=1#top")) == PNG
    (request,) = recording.requests
    assert request.url.host == PUBLIC_IP
    assert request.url.query == b"v=1"
    assert request.headers["Host"] == "images.example"
    assert "sni_hostname" not in request.extensions
    timeouts = {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 5.0}
    assert request.extensions["timeout"] == timeouts
    assert resolver.calls == ["images.example"]


def test_https_sets_sni_and_host_to_the_name(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = ok()
    run(fetcher(recording).fetch("https://Images.Example:8443/a.png"))
    (request,) = recording.requests
    assert request.url.scheme == "https"
    assert request.url.host == PUBLIC_IP
    assert request.url.port == 8443
    assert request.headers["Host"] == "images.example:8443"
    assert request.extensions["sni_hostname"] == "images.example"


def test_rebinding_cannot_switch_the_address(recording: RecordingTransport) -> None:
    class Rebinding(StubResolver):
        """Answers a public address once, loopback afterwards."""

        async def resolve(self, host: str) -> Sequence[IPAddress]:
            self.calls.append(host)
            return [ipaddress.ip_address(PUBLIC_IP if len(self.calls) == 1 else "127.0.0.1")]

    resolver = Rebinding({})
    recording.routes[(PUBLIC_IP, "/first")] = redirect("/second")
    recording.routes[(PUBLIC_IP, "/second")] = redirect("http://images.example/a.png")
    recording.routes[(PUBLIC_IP, "/a.png")] = ok()
    assert run(fetcher(recording, resolver).fetch("http://images.example/first")) == PNG
    assert resolver.calls == ["images.example"]
    assert [r.url.host for r in recording.requests] == [PUBLIC_IP] * 3


# -- redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1/a.png",
        "http://2130706433/a.png",
        "http://[::1]/a.png",
        "http://evil.test/a.png",
        "http://meta.test/latest/meta-data/",
        "file:///etc/passwd",
        "http:\\\\127.0.0.1\\a.png",
        "/\\127.0.0.1/a.png",
    ],
)
def test_redirect_targets_are_checked(recording: RecordingTransport, location: str) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = redirect(location)
    with pytest.raises(ImageUrlForbidden):
        run(fetcher(recording).fetch("http://images.example/a.png"))
    assert len(recording.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_followed(recording: RecordingTransport, status: int) -> None:
    recording.routes[(PUBLIC_IP, "/old.png")] = redirect("//other.example/new.png", status)
    recording.routes[("93.184.216.35", "/new.png")] = ok()
    assert run(fetcher(recording).fetch("http://images.example/old.png")) == PNG
    assert recording.requests[1].headers["Host"] == "other.example"


def test_too_many_redirects(recording: RecordingTransport) -> None:
    for n in range(5):
        recording.routes[(PUBLIC_IP, f"/{n}")] = redirect(f"/{n + 1}")
    recording.routes[(PUBLIC_IP, "/5")] = ok()
    with pytest.raises(ImageFetchFailed, match="more than 3"):
        run(fetcher(recording).fetch("http://images.example/0"))
    assert len(recording.requests) == 4
    assert run(fetcher(recording, max_redirects=5).fetch("http://images.example/0")) == PNG


def test_redirect_without_location(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = httpx.Response(302)
    with pytest.raises(ImageFetchFailed, match="without a Location"):
        run(fetcher(recording).fetch("http://images.example/a.png"))


# -- answers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [204, 404, 500, 304])
def test_non_success_status(recording: RecordingTransport, status: int) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = httpx.Response(status)
    if status == 204:
        assert run(fetcher(recording).fetch("http://images.example/a.png")) == b""
        return
    with pytest.raises(ImageFetchFailed, match=f"HTTP {status}"):
        run(fetcher(recording).fetch("http://images.example/a.png"))


def test_declared_length_over_the_cap(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = ok(PNG, **{"Content-Length": str(10**9)})
    with pytest.raises(ImageFileExceedsMaxSize):
        run(fetcher(recording).fetch("http://images.example/a.png"))


def test_cap_given_per_fetch(recording: RecordingTransport) -> None:
    recording.routes[(PUBLIC_IP, "/a.png")] = ok()
    shared = fetcher(recording)
    assert run(shared.fetch("http://images.example/a.png", max_bytes=len(PNG))) == PNG
    with pytest.raises(ImageFileExceedsMaxSize):
        run(shared.fetch("http://images.example/a.png", max_bytes=len(PNG) - 1))


class EndlessStream(httpx.AsyncByteStream):
    def __init__(self) -> None:
        self.chunks = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks += 1
            yield b"\0" * 1024

    async def aclose(self) -> None:
        self.closed = True


def test_streamed_body_stops_at_the_cap() -> None:
    stream = EndlessStream()

    class Endless(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=stream)

    with pytest.raises(ImageFileExceedsMaxSize):
        run(fetcher(Endless(), max_bytes=10 * 1024).fetch("http://images.example/a.png"))
    assert stream.chunks == 11
    assert stream.closed


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (httpx.ConnectError("refused"), "refused"),
        (httpx.ReadTimeout("slow"), "in time"),
        (httpx.RemoteProtocolError("bad"), "bad"),
    ],
)
def test_transport_errors_become_fetch_failed(error: Exception, message: str) -> None:
    class Failing(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise error

    with pytest.raises(ImageFetchFailed, match=message):
        run(fetcher(Failing()).fetch("http://images.example/a.png"))


def test_total_timeout() -> None:
    class Stalling(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(60)
            raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(ImageFetchFailed, match="longer than 0.2 s"):
        run(fetcher(Stalling(), total_timeout=0.2).fetch("http://images.example/a.png"))
    assert time.monotonic() - started < 2


# -- a real server on loopback -------------------------------------------------------------------


def local_fetch(url: str, resolver: StubResolver | None = None, **limits: object) -> bytes:
    async def main() -> bytes:
        transport = network_transport()
        try:
            return await fetcher(transport, resolver, **limits).fetch(url)
        finally:
            await transport.aclose()

    return asyncio.run(main())


def test_loopback_is_refused_without_opt_in(http_server: LocalServer) -> None:
    for url in (
        http_server.url("/photo.jpg"),
        http_server.url("/photo.jpg", host="127.1"),
        http_server.url("/photo.jpg", host="2130706433"),
        http_server.url("/photo.jpg", host="localhost"),
        http_server.url("/photo.jpg", host="loop.test"),
    ):
        with pytest.raises(ImageUrlForbidden):
            local_fetch(url)
    assert http_server.paths == []


def test_loopback_with_opt_in(http_server: LocalServer) -> None:
    body = local_fetch(http_server.url("/photo.jpg"), allowed_private_hosts=("127.0.0.1",))
    assert body == PHOTO.read_bytes()
    body = local_fetch(http_server.url("/redirect"), allowed_private_hosts=("127.0.0.1",))
    assert body == PHOTO.read_bytes()
    assert http_server.paths == ["/photo.jpg", "/redirect", "/photo.jpg"]


def test_opted_in_name_cannot_redirect_to_an_unlisted_loopback(http_server: LocalServer) -> None:
    url = http_server.url("/redirect-to-ip", host="cdn.test")
    resolver = StubResolver({"cdn.test": ["127.0.0.1"]})
    with pytest.raises(ImageUrlForbidden):
        local_fetch(url, resolver, allowed_private_hosts=("cdn.test",))
    assert http_server.paths == ["/redirect-to-ip"]
    assert resolver.calls == ["cdn.test"]


def test_local_redirect_loop(http_server: LocalServer) -> None:
    with pytest.raises(ImageFetchFailed, match="redirected"):
        local_fetch(http_server.url("/redirect-loop"), allowed_private_hosts=("127.0.0.1",))
    assert http_server.paths == ["/redirect-loop"] * 4


def test_endless_body_is_cut_at_the_cap(http_server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFileExceedsMaxSize):
        local_fetch(
            http_server.url("/forever"), allowed_private_hosts=("127.0.0.1",), max_bytes=1 << 20
        )
    assert time.monotonic() - started < 5


def test_declared_huge_body(http_server: LocalServer) -> None:
    with pytest.raises(ImageFileExceedsMaxSize):
        local_fetch(http_server.url("/huge-declared"), allowed_private_hosts=("127.0.0.1",))


@pytest.mark.parametrize(
    ("limits", "message"),
    [({"read_timeout": 0.2}, "in time"), ({"total_timeout": 0.3}, "longer than")],
)
def test_slow_server_times_out(
    http_server: LocalServer, limits: dict[str, float], message: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFetchFailed, match=message):
        local_fetch(http_server.url("/slow"), allowed_private_hosts=("127.0.0.1",), **limits)
    assert time.monotonic() - started < 3


def test_missing_image(http_server: LocalServer) -> None:
    with pytest.raises(ImageFetchFailed, match="HTTP 404"):
        local_fetch(http_server.url("/nothing.png"), allowed_private_hosts=("127.0.0.1",))


def tls_fetch(url: str, certificate: Certificate, host: str) -> bytes:
    async def main() -> bytes:
        transport = network_transport(verify=certificate.client_context())
        resolver = StubResolver({"images.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        try:
            return await fetcher(transport, resolver, allowed_private_hosts=(host,)).fetch(url)
        finally:
            await transport.aclose()

    return asyncio.run(main())


def test_https_verifies_the_name_while_connecting_to_the_ip(
    https_server: LocalServer, certificate: Certificate
) -> None:
    # The certificate names images.test only: success proves SNI and verification used the name
    # although the connection went to 127.0.0.1.
    url = https_server.url("/photo.jpg", host="images.test")
    assert tls_fetch(url, certificate, "images.test") == PHOTO.read_bytes()
    with pytest.raises(ImageFetchFailed, match="certificate|CERTIFICATE"):
        tls_fetch(https_server.url("/photo.jpg", host="other.test"), certificate, "other.test")
    with pytest.raises(ImageFetchFailed, match="certificate|CERTIFICATE"):
        tls_fetch(https_server.url("/photo.jpg"), certificate, "127.0.0.1")
    assert https_server.paths == ["/photo.jpg"]
