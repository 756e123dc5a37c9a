"""Replicas of one upstream model: least-outstanding choice, passive ejection, active health probes.

Plain asyncio and no I/O of its own: the health probe is a callable handed in, so the pool can
be driven by a unit test. A replica is ejected after `max_failures` consecutive failed requests,
or at once when a health probe fails; an ejected replica returns when a probe succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

__all__ = ["Replica", "ReplicaPool"]

_log = logging.getLogger(__name__)

Probe = Callable[[str], Awaitable[bool]]


@dataclass(slots=True)
class Replica:
    """One upstream base URL and what the pool knows of it now."""

    base_url: str
    outstanding: int = 0
    failures: int = 0
    ejected: bool = False


class ReplicaPool:
    """Chooses a replica per attempt and keeps the health picture up to date."""

    def __init__(
        self,
        base_urls: Sequence[str],
        probe: Probe,
        *,
        health_interval_s: float = 5.0,
        max_failures: int = 2,
    ) -> None:
        if not base_urls:
            raise ValueError("an upstream model needs at least one replica URL")
        self._replicas = [Replica(url.rstrip("/")) for url in base_urls]
        self._probe = probe
        self._interval = health_interval_s
        self._max_failures = max_failures
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self.ejections = 0
        """Times a replica was taken out, for the metrics layer."""

    @property
    def replicas(self) -> tuple[Replica, ...]:
        return tuple(self._replicas)

    @property
    def outstanding(self) -> int:
        return sum(r.outstanding for r in self._replicas)

    def pick(self, exclude: frozenset[str] = frozenset()) -> Replica:
        """The in-service replica with the fewest requests open, ties taken in turn.

        `exclude` names replicas a request already failed on; when that leaves none, any will do
        (one replica may well succeed on a second try). When every candidate is ejected, all of
        them are tried again: a replica that may have recovered beats a refusal outright (Envoy's
        "panic" routing).
        """
        candidates = [r for r in self._replicas if r.base_url not in exclude] or self._replicas
        in_service = [r for r in candidates if not r.ejected] or candidates
        fewest = min(r.outstanding for r in in_service)
        tied = [r for r in in_service if r.outstanding == fewest]
        self._next += 1
        return tied[self._next % len(tied)]

    @contextlib.contextmanager
    def lease(self, replica: Replica) -> Iterator[Replica]:
        """Count the replica's request as open while the block runs."""
        replica.outstanding += 1
        try:
            yield replica
        finally:
            replica.outstanding -= 1

    def succeeded(self, replica: Replica) -> None:
        replica.failures = 0

    def failed(self, replica: Replica) -> None:
        replica.failures += 1
        if replica.failures >= self._max_failures:
            self._eject(replica, f"{replica.failures} requests failed in a row")

    async def check(self) -> None:
        """Probe every replica once, concurrently; eject the failing ones, restore the healthy."""
        # A probe that raises counts as failed: the health loop must outlive any one probe.
        results = await asyncio.gather(*(self._probe(r.base_url) for r in self._replicas), return_exceptions=True)
        for replica, result in zip(self._replicas, results, strict=True):
            ok = result is True
            if ok and replica.ejected:
                replica.ejected, replica.failures = False, 0
                _log.info("upstream replica back in service", extra={"upstream": replica.base_url})
            elif not ok:
                self._eject(replica, "health check failed")

    async def start(self) -> None:
        """Probe once now, then every `health_interval_s` in the background. Idempotent."""
        if self._task is not None:
            return
        await self.check()
        self._task = asyncio.create_task(self._run(), name="loupe-upstream-health")

    async def close(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    def _eject(self, replica: Replica, why: str) -> None:
        if replica.ejected:
            return
        replica.ejected = True
        self.ejections += 1
        _log.warning("upstream replica ejected", extra={"upstream": replica.base_url, "reason": why})
