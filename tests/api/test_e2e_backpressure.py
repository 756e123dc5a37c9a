"""A client that starts a stream and stops reading: its generation pauses, then is cancelled and
charged what was generated, while other clients' streams keep flowing. Real server, raw socket."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
import sqlalchemy as sa

from loupe.billing import cost_nanos, open_database, prices_of
from tests.api.keyed import keyed_server, loupe_cli
from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

PRICE_IN, PRICE_OUT = Decimal("100"), Decimal("200")
BUFFER = 16  # stream_buffer_tokens
SEND_BUFFER = 65536  # the default send_buffer_bytes
RECEIVE_BUFFER = 4096  # the stalled client's own
TRANSPORT_HIGH_WATER = 65536  # asyncio's, above which uvicorn stops writing
MAX_TOKENS = 8000
_EVENT = re.compile(rb"data: (\{.*?\})\n\n")


@pytest.fixture(scope="module")
def billed(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[tuple[RunningServer, str, str]]:
    config = f"""
[[models]]
id = "vision"
checkpoint = "{tiny_checkpoint('qwen2-vl')}"
input_price_per_m = "{PRICE_IN}"
output_price_per_m = "{PRICE_OUT}"
[engine]
stream_buffer_tokens = {BUFFER}
stream_stall_timeout_s = 2.0
[server]
write_timeout_s = 2.0
"""
    with keyed_server(tmp_path_factory.mktemp("backpressure"), config) as (server, db, admin):
        yield server, db, loupe_cli("keys", "create", "--name", "reader", db=db)


def ledger_row(db: str, request_id: str) -> dict[str, Any]:
    for _ in range(300):
        database = open_database(db)
        try:
            with database.read() as conn:
                rows = list(conn.execute(sa.text("select * from ledger where request_id = :r"), {"r": request_id}).mappings())
        finally:
            database.dispose()
        if rows:
            return dict(rows[0])
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {request_id}")


def stalled_stream(server: RunningServer, secret: str) -> tuple[socket.socket, bytes]:
    """Start a long stream on a socket with a small receive buffer; read up to its first event."""
    body = json.dumps({
        "model": "vision", "stream": True, "max_tokens": MAX_TOKENS, "temperature": 0,
        "messages": [{"role": "user", "content": "Tell me a very long story."}],
    }).encode()
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    sock.settimeout(60)
    sock.connect((host, int(port)))
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: loupe\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {secret}\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
    )
    received = b""
    while not _EVENT.search(received):
        received += sock.recv(1024)
    return sock, received


def content_events(raw: bytes) -> list[dict[str, Any]]:
    events = [json.loads(m) for m in _EVENT.findall(raw)]
    return [e for e in events if e.get("choices") and e["choices"][0]["delta"].get("content")]


def test_a_client_that_stops_reading_is_paused_cancelled_and_charged_what_was_generated(
    billed: tuple[RunningServer, str, str],
) -> None:
    server, db, secret = billed
    sock, first = stalled_stream(server, secret)
    with sock:
        request_id = json.loads(_EVENT.search(first).group(1))["id"]  # type: ignore[union-attr]
        # Meanwhile another client's stream runs to its end at full speed.
        other = openai.OpenAI(base_url=server.api, api_key=secret, max_retries=0, timeout=120)
        chunks = list(other.chat.completions.create(
            model="vision", messages=[{"role": "user", "content": "Hi"}], max_tokens=300, temperature=0,
            stream=True, stream_options={"include_usage": True},
        ))
        assert chunks[-1].usage is not None and chunks[-2].choices[0].finish_reason is not None
        row = ledger_row(db, request_id)  # settled once the server gave up on the stalled client
        try:
            rest = b""
            while data := sock.recv(65536):
                rest += data
        except ConnectionResetError:
            pass
    assert row["status"] == 499 and row["charged"]
    received = len(content_events(first + rest))
    # Everything the client received was charged, and what was generated beyond it is bounded
    # by what the connection buffers (kernel send and receive buffers, the transport's) plus the
    # stream buffer; a chunk of one token is well over 100 bytes on the wire.
    bound = (2 * SEND_BUFFER + TRANSPORT_HIGH_WATER + 2 * RECEIVE_BUFFER) // 100 + BUFFER
    assert received <= row["completion_tokens"] <= received + bound < MAX_TOKENS // 2
    prompt_tokens = row["text_tokens"] + row["image_tokens"]
    assert row["cost"] == cost_nanos(prices_of(PRICE_IN, PRICE_OUT), prompt_tokens, row["completion_tokens"])
    print(f"received {received}, charged {row['completion_tokens']}, bound {received + bound}")
