"""How far a request's consumer is behind its generation: the bounded buffer of a stream.

The inference thread counts the tokens it emits, the event loop the tokens its consumer has
taken (asked past); each count has one writer, so reading both from either thread is safe. A
request whose consumer is `limit` tokens behind is paused (its sequences sit out the decode
steps) until the consumer has caught up to half of that; one that stays paused for the stall
timeout is cancelled. So a client that stops reading costs at most `limit` tokens beyond what
was handed to its connection, and holds its batch slot for at most the stall timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

POLL_S = 0.05  # how often a thread with nothing else to do looks at paused streams again
IDLE_S = 1.0  # an inference thread with nothing to do for this long is idle (and hands memory back)


@dataclass(slots=True)
class StreamFlow:
    limit: int
    emitted: int = 0  # written by the inference thread
    taken: int = 0  # written by the event loop
    paused_at: float | None = None  # monotonic time the request was paused (inference thread)

    @property
    def backlog(self) -> int:
        return self.emitted - self.taken

    @property
    def full(self) -> bool:
        return self.backlog >= self.limit

    @property
    def caught_up(self) -> bool:
        return self.backlog <= self.limit // 2
