"""SSE framing and chunk parsing of upstream streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from loupe.engines.upstream.client import Chunk, UpstreamUsage, parse_chunk
from loupe.engines.upstream.errors import UpstreamBadResponse
from loupe.engines.upstream.sse import EventTooLarge, SSEDecoder, sse_data, sse_lines


def feed_all(lines: list[str]) -> list[str]:
    decoder = SSEDecoder()
    out = [d for d in (decoder.feed(line) for line in lines) if d is not None]
    tail = decoder.flush()
    return out + ([tail] if tail is not None else [])


def test_one_event_per_blank_line() -> None:
    assert feed_all(["data: a", "", "data: b", ""]) == ["a", "b"]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert feed_all(["data: a", "data: b", ""]) == ["a\nb"]


def test_comments_and_other_fields_are_skipped() -> None:
    assert feed_all([": keep-alive", "event: message", "id: 7", "retry: 10", "data: x", ""]) == ["x"]


def test_no_space_after_colon_and_empty_data() -> None:
    assert feed_all(["data:x", "", "data", ""]) == ["x", ""]


def test_last_event_without_blank_line_is_kept() -> None:
    assert feed_all(["data: a", "", "data: tail"]) == ["a", "tail"]


def test_blank_lines_alone_make_no_event() -> None:
    assert feed_all(["", "", ""]) == []


@pytest.mark.asyncio
async def test_sse_data_strips_carriage_returns() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["data: a\r", "\r", "data: [DONE]\r", "\r"]:
            yield line

    assert [d async for d in sse_data(lines())] == ["a", "[DONE]"]


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


STREAM = "data: {\"content\": \"é 中文 😀\"}\r\n\r\ndata: a\ndata: b\n\n: comment\ndata: [DONE]\n\n".encode()


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1 << 16])
async def test_lines_survive_any_split_of_the_bytes(size: int) -> None:
    """Chunks may end anywhere, inside a multi-byte character included."""
    lines = [line async for line in sse_lines(pieces(STREAM, size), 1 << 10)]
    assert lines == STREAM.decode().split("\n")[:-1]
    events = [d async for d in sse_data(sse_lines(pieces(STREAM, size), 1 << 10), 1 << 10)]
    assert events == ['{"content": "é 中文 😀"}', "a\nb", "[DONE]"]


@pytest.mark.asyncio
async def test_an_endless_line_is_refused_once_it_passes_the_limit() -> None:
    seen = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal seen
        while True:
            seen += 4096
            yield b"x" * 4096

    with pytest.raises(EventTooLarge):
        async for _ in sse_lines(endless(), 64 * 1024):
            pass
    assert seen <= 64 * 1024 + 4096  # nothing read beyond the chunk that crossed it


def test_an_event_of_endless_data_lines_is_refused_once_it_passes_the_limit() -> None:
    decoder = SSEDecoder(max_event_chars=100)
    for _ in range(10):  # ten lines of ten characters (their line breaks included): at the limit
        assert decoder.feed("data: " + "x" * 9) is None
    with pytest.raises(EventTooLarge):
        decoder.feed("data: " + "x" * 9)
    assert SSEDecoder(100).feed(": " + "x" * 500) is None  # comments hold nothing


def chunk(**fields: object) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", **fields})


def test_text_chunk() -> None:
    data = chunk(choices=[{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}])
    assert parse_chunk(data) == Chunk(text="hi")


def test_role_chunk_has_no_text() -> None:
    assert parse_chunk(chunk(choices=[{"index": 0, "delta": {"role": "assistant"}}])) == Chunk()


def test_finish_and_usage_with_image_tokens() -> None:
    usage = {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "prompt_tokens_details": {"image_tokens": 16}}
    data = chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "length"}], usage=usage)
    assert parse_chunk(data) == Chunk(finish_reason="length", usage=UpstreamUsage(30, 5, 16))


def test_usage_only_chunk_without_details() -> None:
    data = chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4})
    assert parse_chunk(data).usage == UpstreamUsage(3, 1, None)


@pytest.mark.parametrize(
    "data",
    [
        "not json",
        "[1, 2]",
        chunk(choices="nope"),
        chunk(choices=[], usage={"prompt_tokens": -1, "completion_tokens": 0}),
        chunk(choices=[], usage={"prompt_tokens": "3", "completion_tokens": 0}),
    ],
)
def test_malformed_events_are_bad_responses(data: str) -> None:
    with pytest.raises(UpstreamBadResponse):
        parse_chunk(data)


def test_error_event_raises_without_its_text() -> None:
    with pytest.raises(UpstreamBadResponse) as caught:
        parse_chunk(json.dumps({"error": {"message": "CUDA OOM at /secret/path", "code": 500}}))
    assert "secret" not in caught.value.message
