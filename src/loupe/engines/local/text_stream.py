"""Token ids to text deltas: incremental detokenization and stop strings, in plain Python.

Decoding token by token breaks multi-byte characters and word-piece spacing, so the decoder
re-decodes a short window and emits only text that can no longer change. Stop strings are
matched across token boundaries; text that could be the start of a stop string is held back
until it is known not to be one, so a client never sees any part of a stop string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]


class IncrementalDecoder:
    """Turns a growing list of token ids into the text it adds at each step.

    Bytes that may be the start of a character the next token finishes decode to a trailing
    U+FFFD: only that last character is held back (a decoder replaces an unfinished sequence at
    the end with one U+FFFD, and appending bytes changes nothing before it). Bytes that can never
    be a character are given out as the U+FFFD the whole text decodes to, as soon as that is
    certain, and `finish` gives out whatever is still held, so the stream adds up to the
    decoded ids.
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._ahead = 0  # characters past the prefix text given out while one was unfinished

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix, full = self._window()
        start = len(prefix) + self._ahead
        if full.endswith("\ufffd"):
            settled = len(full) - 1
            if settled <= start:
                return ""
            self._ahead = settled - len(prefix)
            self._settle(full[:settled])
            return full[start:settled]
        if len(full) <= start:
            return ""
        self._prefix_offset, self._read_offset, self._ahead = self._read_offset, len(self._ids), 0
        return full[start:]

    def finish(self) -> str:
        """The text still held back at the end (an unfinished character's U+FFFD)."""
        if self._read_offset == len(self._ids):
            return ""
        prefix, full = self._window()
        start = len(prefix) + self._ahead
        self._prefix_offset, self._read_offset, self._ahead = self._read_offset, len(self._ids), 0
        return full[start:]

    def _settle(self, settled: str) -> None:
        """Move the window past the ids whose text is all given out, when the unfinished
        character's bytes are the last ids alone (at most three: one byte or more each), so a
        long run of bytes that make no character does not grow the text decoded per step."""
        for end in range(len(self._ids) - 1, max(self._read_offset, len(self._ids) - 4), -1):
            if self._decode(self._ids[self._prefix_offset : end]) == settled:
                self._prefix_offset, self._read_offset, self._ahead = self._read_offset, end, 0
                return

    def _window(self) -> tuple[str, str]:
        """The text of the ids before the unread ones (from the window start), and with them."""
        window = self._ids[self._prefix_offset :]
        return self._decode(window[: self._read_offset - self._prefix_offset]), self._decode(window)


class StopMatcher:
    """Cuts the text stream at the first stop string and holds back possible beginnings of one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Return the text that is safe to emit; after a stop string, emit nothing more."""
        if self.stopped or not text:
            return ""
        if not self._stops:
            return text
        buffer = self._held + text
        cut = _first_stop(buffer, self._stops)
        if cut is not None:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = _longest_partial_stop(buffer, self._stops)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """At the end of generation, held-back text was not a stop string after all."""
        held, self._held = self._held, ""
        return "" if self.stopped else held


def _first_stop(buffer: str, stops: Sequence[str]) -> int | None:
    positions = [i for i in (buffer.find(s) for s in stops) if i >= 0]
    return min(positions) if positions else None


def _longest_partial_stop(buffer: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of `buffer` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(buffer)), best, -1):
            if buffer.endswith(stop[:size]):
                best = size
                break
    return best


class TextStream:
    """One choice's output: ids in, safe text out, and whether a stop string ended it."""

    def __init__(self, decode: Decode, stops: Sequence[str]) -> None:
        self._decoder = IncrementalDecoder(decode)
        self._matcher = StopMatcher(stops)
        self.tokens = 0

    @property
    def stopped(self) -> bool:
        return self._matcher.stopped

    def push(self, token_id: int) -> str:
        self.tokens += 1
        return self._matcher.feed(self._decoder.push(token_id))

    def finish(self) -> str:
        """The text held back until the end: an unfinished character, a possible stop's start."""
        return self._matcher.feed(self._decoder.finish()) + self._matcher.flush()
