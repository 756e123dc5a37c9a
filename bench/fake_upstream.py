"""A model server with nothing to compute: an OpenAI-compatible stand-in for a GPU cluster, so that a
benchmark measures the gateway in front of it and nothing else.

    python -m bench.fake_upstream PORT [STEP_S]

`GET /v1/models` lists one model, `m`, with vLLM's `max_model_len`; `POST /v1/chat/completions`
streams `max_tokens` chunks of one word each, one every STEP_S seconds (default 0.002: a GPU
server's decode step, each step sending one event on every stream), then usage and `[DONE]`, as
vLLM frames them (chunked transfer, one event per chunk).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

MODELS = json.dumps(
    {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm", "created": 0, "max_model_len": 32768}]}
).encode()


def chunked_event(payload: bytes) -> bytes:
    data = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


STEP_S = 0.002


async def stream(writer: asyncio.StreamWriter, request: dict[str, object]) -> None:
    tokens = int(request.get("max_completion_tokens") or request.get("max_tokens") or 16)  # type: ignore[call-overload]
    head = {"id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion.chunk", "created": int(time.time()), "model": "m"}
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    for i in range(tokens):
        delta = {"role": "assistant", "content": " word"} if i == 0 else {"content": " word"}
        reason = "length" if i == tokens - 1 else None
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
        writer.write(chunked_event(json.dumps({**head, "choices": [choice]}, separators=(",", ":")).encode()))
        await writer.drain()
        await asyncio.sleep(STEP_S)
    usage = {"prompt_tokens": 0, "completion_tokens": tokens, "total_tokens": tokens}
    writer.write(chunked_event(json.dumps({**head, "choices": [], "usage": usage}).encode()))
    writer.write(chunked_event(b"[DONE]") + b"0\r\n\r\n")
    await writer.drain()


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            method = head.split(b" ", 1)[0]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if method == b"GET":
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(MODELS), MODELS))
                await writer.drain()
            else:
                await stream(writer, json.loads(body))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) > 2:
        STEP_S = float(sys.argv[2])
    asyncio.run(serve(int(sys.argv[1])))
