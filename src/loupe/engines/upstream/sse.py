"""Server-sent events in, one `data` payload per event out (the WHATWG event-stream rules we need)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


class SSEDecoder:
    """Feed it lines (without their line break); it returns an event's data when a blank line ends it.

    Comments (`:`) and fields other than `data` (`event`, `id`, `retry`) are skipped; several
    `data` lines of one event are joined with a newline, as the spec says.
    """

    def __init__(self) -> None:
        self._data: list[str] = []

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
        return None

    def flush(self) -> str | None:
        """The pending event's data, if any: a stream may end without its last blank line."""
        if not self._data:
            return None
        data, self._data = "\n".join(self._data), []
        return data


async def sse_data(lines: AsyncIterable[str]) -> AsyncIterator[str]:
    """Every event's data from a stream of lines, the last one even when its blank line is missing."""
    decoder = SSEDecoder()
    async for line in lines:
        data = decoder.feed(line.rstrip("\r"))
        if data is not None:
            yield data
    tail = decoder.flush()
    if tail is not None:
        yield tail
