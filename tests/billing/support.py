"""Helpers shared by the billing tests: a settable clock and common prices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from loupe.billing import prices_of
from loupe.domain import Usage

# 1 per million input tokens, 2 per million output tokens: 1000 prompt + 500 completion = 0.002.
PRICES = prices_of("1", "2")


class FakeClock:
    """A wall clock that moves only when told to."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def usage(prompt: int, completion: int, images: int = 0) -> Usage:
    return Usage(prompt_tokens=prompt, completion_tokens=completion, image_tokens=images)
