"""A request's media worked on concurrently, a failure reported at the part it came from."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from loupe.errors import LoupeError

T = TypeVar("T")
R = TypeVar("R")


class Part(Protocol):
    """A reference to a part of the request (`ImageRef`, `VideoRef`)."""

    @property
    def param(self) -> str: ...


P = TypeVar("P", bound=Part)


async def each(
    refs: Sequence[P], items: Sequence[T], one: Callable[[P, T], Awaitable[R]], failure: type[LoupeError]
) -> list[R]:
    """`one(ref, item)` for every pair at once, the results in order. The first `failure` raised
    is raised again, located at its part's `param`, and the other calls are cancelled."""
    if len(refs) == 1 == len(items):  # most requests carry one image: no task group to set up and tear down
        return [await _located(refs[0], one(refs[0], items[0]), failure)]
    try:
        async with asyncio.TaskGroup() as group:
            pairs = zip(refs, items, strict=True)
            tasks = [group.create_task(_located(ref, one(ref, item), failure)) for ref, item in pairs]
    except* failure as failures:
        raise failures.exceptions[0] from None
    return [task.result() for task in tasks]


async def _located(ref: Part, work: Awaitable[T], failure: type[LoupeError]) -> T:
    try:
        return await work
    except failure as exc:
        raise exc.with_param(ref.param) from None
