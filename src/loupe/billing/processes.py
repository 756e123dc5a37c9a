"""The serving processes sharing one database, and finding the dead among them.

Each `loupe serve` registers a row and bumps its `beats` counter on every heartbeat. Another
process takes it for dead when
- it ran on the same machine and has exited (`liveness.is_running`): seen at once, at start-up too;
- or its counter has not moved for `dead_after_s`, timed by the watcher's own monotonic clock.
No two hosts' wall clocks are compared, so clock skew cannot make a live process look dead. A
process found dead loses its row; the ledger then releases the reservations it held.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from loupe.billing.clock import Clock, utc_now
from loupe.billing.db import Database
from loupe.billing.liveness import ProcessIdentity, is_running
from loupe.billing.tables import processes

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Departed:
    """A process found dead, and why: "exited" or "silent for 31s"."""

    id: str
    identity: ProcessIdentity
    reason: str


class ProcessRegistry:
    """This process's row, its heartbeat, and the verdicts on the others.

    Thread-safe. `owner` is the id this process's reservations carry.
    """

    def __init__(
        self,
        db: Database,
        me: ProcessIdentity,
        *,
        dead_after_s: float,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = "proc_" + secrets.token_hex(8)
        self._db, self._me, self._dead_after_s = db, me, dead_after_s
        self._clock, self._monotonic = clock, monotonic
        self._seen: dict[str, tuple[int, float]] = {}  # id: (beats, when they last moved)
        self._lock = threading.Lock()

    def register(self) -> None:
        """Add (or put back) this process's row."""
        me = self._me
        row = {"id": self.owner, "host": me.host[:255], "pid": me.pid, "machine": me.machine,
               "start_ticks": me.start_ticks, "beats": 0, "started_at": self._clock()}
        with self._db.write() as conn:
            conn.execute(sa.delete(processes).where(processes.c.id == self.owner))
            conn.execute(sa.insert(processes).values(row))

    def beat(self) -> None:
        """Show this process alive; if another took it for dead meanwhile, register again."""
        with self._db.write() as conn:
            moved = conn.execute(
                sa.update(processes).where(processes.c.id == self.owner).values(beats=processes.c.beats + 1)
            ).rowcount
        if moved != 1:
            _log.warning("another process took this one for dead (heartbeat stalled?); registering again")
            self.register()

    def retire(self) -> None:
        """Remove this process's row: what it still holds is released by the next sweep."""
        with self._db.write() as conn:
            conn.execute(sa.delete(processes).where(processes.c.id == self.owner))

    def remove_dead(self) -> list[Departed]:
        """Find the dead among the other registered processes and remove their rows."""
        with self._lock:
            with self._db.read() as conn:
                rows = conn.execute(sa.select(processes).where(processes.c.id != self.owner)).mappings().all()
            now = self._monotonic()
            self._seen = {i: seen for i, seen in self._seen.items() if i in {row["id"] for row in rows}}
            departed = []
            for row in rows:
                reason = self._verdict(row, now)
                if reason is not None and self._remove(row):
                    departed.append(Departed(row["id"], _identity(row), reason))
                    self._seen.pop(row["id"], None)
        return departed

    def _verdict(self, row: sa.RowMapping, now: float) -> str | None:
        """Why the process of `row` is dead, or None while it may be alive."""
        if is_running(_identity(row), self._me) is False:
            return "exited"
        beats, since = self._seen.get(row["id"], (None, now))
        if beats != row["beats"]:
            self._seen[row["id"]] = (row["beats"], now)
            return None
        silent = now - since
        return f"silent for {silent:.0f}s" if silent >= self._dead_after_s else None

    def _remove(self, row: sa.RowMapping) -> bool:
        # Only if it has not beaten since it was read: a late heartbeat keeps it alive.
        with self._db.write() as conn:
            removed = conn.execute(
                sa.delete(processes)
                .where(processes.c.id == row["id"], processes.c.beats == row["beats"])
                .returning(processes.c.id)
            ).first()
        return removed is not None


def _identity(row: sa.RowMapping) -> ProcessIdentity:
    return ProcessIdentity(row["host"], row["pid"], row["machine"], row["start_ticks"])
