"""Bodies over `max_request_bytes` get a 413 in the envelope, whether declared or chunked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024


def chunked_body(total: int, piece: int = MiB) -> Iterator[bytes]:
    """A JSON chat body of about `total` bytes, sent without Content-Length (a generator makes
    httpx use chunked transfer encoding)."""
    yield b'{"model": "m", "messages": [{"role": "user", "content": "'
    sent = 0
    while sent < total:
        yield b"a" * piece
        sent += piece
    yield b'"}]}'


def test_a_chunked_body_over_the_limit_is_413(qwen_server: RunningServer) -> None:
    request = httpx.Request(
        "POST", f"{qwen_server.api}/chat/completions", content=chunked_body(51 * MiB),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    with httpx.Client(timeout=60) as client:
        response = client.send(request)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"
    assert httpx.get(f"{qwen_server.base_url}/health").status_code == 200


def test_a_chunked_body_under_the_limit_is_read_whole(qwen_server: RunningServer) -> None:
    model = httpx.get(f"{qwen_server.api}/models").json()["data"][0]["id"]

    def body() -> Iterator[bytes]:
        yield b'{"model": "' + model.encode() + b'", "max_tokens": 2, '
        yield b'"messages": [{"role": "user", "content": "hello"}]}'

    response = httpx.post(
        f"{qwen_server.api}/chat/completions", content=body(), headers={"content-type": "application/json"}, timeout=60
    )
    assert response.status_code == 200, response.text
