"""Server-sent events in, one `data` payload per event out (the WHATWG event-stream rules we need)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


class EventTooLarge(ValueError):
    """A line or an event of the stream grew past its limit before its end arrived."""


class SSEDecoder:
    """Feed it lines (without their line break); it returns an event's data when a blank line ends it.

    Comments (`:`) and fields other than `data` (`event`, `id`, `retry`) are skipped; several
    `data` lines of one event are joined with a newline, as the spec says.
    """

    def __init__(self, max_event_chars: int | None = None) -> None:
        self._data: list[str] = []
        self._size, self._max = 0, max_event_chars

    def feed(self, line: str) -> str | None:
        if not line:
            return self.flush()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if name == "data":
            self._data.append(value[1:] if value.startswith(" ") else value)
        elif not colon and line == "data":
            self._data.append("")
        else:
            return None
        self._size += len(self._data[-1]) + 1
        if self._max is not None and self._size > self._max:
            raise EventTooLarge(f"an event of the stream passed {self._max} characters")
        return None

    def flush(self) -> str | None:
        """The pending event's data, if any: a stream may end without its last blank line."""
        if not self._data:
            return None
        data, self._data, self._size = "\n".join(self._data), [], 0
        return data


async def sse_lines(chunks: AsyncIterable[bytes], max_line_bytes: int) -> AsyncIterator[str]:
    """The lines of a byte stream (split at LF; a CR before it is left for `sse_data`), decoded as
    UTF-8, holding at most `max_line_bytes` of an unfinished line: raises EventTooLarge past it."""
    pending = bytearray()
    async for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            yield pending.decode("utf-8", errors="replace")
            pending.clear()
            start = end + 1
        pending += chunk[start:]
        if len(pending) > max_line_bytes:
            raise EventTooLarge(f"a line of the stream passed {max_line_bytes} bytes")
    if pending:
        yield pending.decode("utf-8", errors="replace")


async def sse_data(lines: AsyncIterable[str], max_event_chars: int | None = None) -> AsyncIterator[str]:
    """Every event's data from a stream of lines, the last one even when its blank line is missing;
    raises EventTooLarge for an event longer than `max_event_chars`."""
    decoder = SSEDecoder(max_event_chars)
    async for line in lines:
        data = decoder.feed(line.rstrip("\r"))
        if data is not None:
            yield data
    tail = decoder.flush()
    if tail is not None:
        yield tail
