"""Slow, idle and too many clients: deadlines for headers and body, idle keep-alive, and the cap.

Raw sockets against a real `loupe serve` whose `[server]` deadlines are short.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

CAP = 64
SERVER_TOML = f"""
[server]
header_timeout_s = 1.5
body_timeout_s = 2.0
keep_alive_s = 1
write_timeout_s = 3.0
max_connections = {CAP}
"""


@pytest.fixture(scope="module")
def server(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    config = tmp_path_factory.mktemp("guarded") / "loupe.toml"
    config.write_text(SERVER_TOML)
    return serve("--model", str(tiny_checkpoint("qwen2-vl")), "--config", str(config))


def connect(server: RunningServer) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed)."""
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def dribble(sock: socket.socket, data: bytes, every_s: float = 0.1) -> bool:
    """Send `data` one byte per `every_s`; False as soon as the server cut the connection."""
    for byte in data:
        try:
            sock.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return False
        time.sleep(every_s)
    return True


def error_of(response: bytes) -> tuple[int, dict[str, str]]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"]


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_408(server: RunningServer) -> None:
    with connect(server) as sock:
        # 100 bytes at 10 per second would take 10 s; the headers' deadline is 1.5 s.
        finished = dribble(sock, b"GET /health HTTP/1.1\r\nHost: loupe\r\nX-Slow: " + b"a" * 70 + b"\r\n\r\n")
        status, error = error_of(read_until_closed(sock))
    assert not finished
    assert status == 408 and error["code"] == "REQUEST_TIMEOUT" and "headers" in error["message"]


def test_a_body_sent_a_byte_at_a_time_is_cut_off_with_408(server: RunningServer) -> None:
    body = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * 100 + b'"}]}'
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: loupe\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        finished = dribble(sock, body)
        status, error = error_of(read_until_closed(sock))
    assert not finished
    assert status == 408 and error["code"] == "REQUEST_TIMEOUT" and "body" in error["message"]
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server: RunningServer) -> None:
    with connect(server) as sock:
        assert read_until_closed(sock) == b""


def test_an_idle_kept_alive_connection_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: loupe\r\n\r\n")
        response = read_until_closed(sock)  # the answer, then the close once idle for keep_alive_s
    assert response.startswith(b"HTTP/1.1 200") and b'"status":"ok"' in response


def test_beyond_the_cap_requests_get_503_and_held_connections_are_all_released(server: RunningServer) -> None:
    """Two thousand clients hold connections with partial headers or partial bodies: a request
    over the cap gets a 503 in the envelope; the deadlines then close every one of them, and the
    server answers again."""
    held = []
    for i in range(2000):
        sock = connect(server)
        if i % 2:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: loupe\r\n")  # headers never end
        else:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: l\r\ncontent-length: 100\r\n\r\n{")
        held.append(sock)
    refused = httpx.get(f"{server.base_url}/health", timeout=30)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "SERVICE_NOT_AVAILABLE" and refused.headers["retry-after"] == "1"
    answers = [read_until_closed(sock) for sock in held]  # each returns once the server closes it
    for sock in held:
        sock.close()
    # Within the cap: 408 (late headers or body); beyond it, a complete request head is
    # answered 503 at once and an incomplete one times out like the others.
    statuses = [a[:12] for a in answers]
    assert set(statuses) <= {b"HTTP/1.1 408", b"HTTP/1.1 503"}
    assert statuses.count(b"HTTP/1.1 408") >= 1000
    assert httpx.get(f"{server.base_url}/health", timeout=30).status_code == 200

