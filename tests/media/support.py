"""Test helpers for media: the shared images, a recording transport, a stub resolver and a real
HTTP(S) server on loopback. Nothing here sends a packet beyond 127.0.0.1."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from loupe.errors import ImageFetchFailed
from loupe.media.address_policy import IPAddress

IMAGES = Path(__file__).resolve().parents[2].parent / "shared" / "images"
PHOTO = IMAGES / "photos" / "zidane.jpg"


class RecordingTransport(httpx.AsyncBaseTransport):
    """Answers from a table of canned responses keyed by (IP host, path); records every request."""

    def __init__(self, routes: dict[tuple[str, str], httpx.Response] | None = None) -> None:
        self.routes = routes or {}
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        canned = self.routes.get((request.url.host, request.url.path))
        if canned is None:
            return httpx.Response(404)
        return httpx.Response(canned.status_code, headers=canned.headers, content=canned.content)


class StubResolver:
    """Resolves names from a table; counts calls per name."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = {
            name: [ipaddress.ip_address(a) for a in addrs] for name, addrs in table.items()
        }
        self.calls: list[str] = []

    async def resolve(self, host: str) -> Sequence[IPAddress]:
        self.calls.append(host)
        if host not in self.table:
            raise ImageFetchFailed(f"stub: {host} does not resolve")
        return self.table[host]


@dataclass
class LocalServer:
    """A real HTTP(S) server on 127.0.0.1 and the paths it was asked for."""

    port: int
    scheme: str
    paths: list[str] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"


def _handler(server: LocalServer, stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    photo = PHOTO.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            server.paths.append(self.path)
            route = {
                "/photo.jpg": self._photo,
                "/redirect": lambda: self._redirect("/photo.jpg"),
                "/redirect-loop": lambda: self._redirect("/redirect-loop"),
                "/redirect-to-ip": lambda: self._redirect(server.url("/photo.jpg")),
                "/forever": self._forever,
                "/slow": self._slow,
                "/huge-declared": self._huge_declared,
            }.get(self.path, lambda: self.send_error(404))
            try:
                route()
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the fetcher hung up, as it should

        def _photo(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(photo)))
            self.end_headers()
            self.wfile.write(photo)

        def _redirect(self, target: str) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.end_headers()

        def _forever(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.end_headers()
            chunk = b"\xff" * 65536
            while not stop.is_set():
                self.wfile.write(chunk)

        def _slow(self) -> None:
            stop.wait(5)

        def _huge_declared(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(photo[:100])

    return Handler


def serve(context: ssl.SSLContext | None) -> Iterator[LocalServer]:
    stop = threading.Event()
    local = LocalServer(port=0, scheme="https" if context else "http")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(local, stop))
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    local.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield local
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))
