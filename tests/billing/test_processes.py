"""Processes sharing a database find the dead among them and release what the dead held."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from loupe.billing import Billing, Database, InProcessRateLimiter
from loupe.billing.heartbeat import Heartbeat
from loupe.billing.liveness import ProcessIdentity, process_identity, this_process
from loupe.billing.processes import ProcessRegistry
from loupe.billing.tables import processes

from .support import PRICES, FakeClock, usage

ELSEWHERE = ProcessIdentity("other-host", 4242, "another-boot pid:[4026531836]", 1)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def billing_as(database: Database, identity: ProcessIdentity, monotonic: Monotonic | None = None) -> Billing:
    """The billing of a serving process with this identity, registered."""
    processes = ProcessRegistry(database, identity, dead_after_s=30, monotonic=monotonic or Monotonic())
    billing = Billing(database, InProcessRateLimiter(), processes=processes)
    billing.register()
    return billing


def test_reservations_of_a_process_that_exited_are_released_at_once(
    database: Database, child: subprocess.Popen[bytes]
) -> None:
    doomed = billing_as(database, process_identity(child.pid))
    key = doomed.keys.create("k", balance="1").key
    first = doomed.admit(key, "m", PRICES, 1000, 500, "req-1")
    doomed.admit(key, "m", PRICES, 1000, 500, "req-2")
    assert doomed.processes is not None
    assert {r.owner for r in doomed.ledger.open_reservations()} == {doomed.processes.owner}
    watcher = billing_as(database, this_process())
    mine = watcher.admit(key, "m", PRICES, 10, 10, "req-3")
    assert watcher.sweep() == 0  # alive: nothing released

    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert watcher.sweep() == 2
    assert [r.request_id for r in watcher.ledger.open_reservations()] == ["req-3"]
    after = watcher.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (10**9, mine.reservation.amount_nanos)

    # Had it settled after all, the charge lands once and the watcher's hold is untouched.
    assert doomed.settle(first, 200, usage(1000, 500)).recorded
    assert not doomed.settle(first, 200, usage(1000, 500)).recorded
    after = watcher.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (10**9 - 2_000_000, mine.reservation.amount_nanos)


def test_a_fresh_process_on_the_same_machine_releases_them_at_start_up(
    database: Database, child: subprocess.Popen[bytes]
) -> None:
    doomed = billing_as(database, process_identity(child.pid))
    key = doomed.keys.create("k", balance="1").key
    doomed.admit(key, "m", PRICES, 1000, 500, "req-1")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    restarted = Billing(
        database, InProcessRateLimiter(), processes=ProcessRegistry(database, this_process(), dead_after_s=30)
    )
    assert restarted.sweep() == 1  # before it registers or beats: what `loupe serve` does first
    assert restarted.keys.get(key.id).available_nanos == 10**9


def test_a_process_elsewhere_is_dead_once_its_heartbeat_stops_for_dead_after_s(database: Database) -> None:
    elsewhere = billing_as(database, ELSEWHERE)
    key = elsewhere.keys.create("k", balance="1").key
    elsewhere.admit(key, "m", PRICES, 1000, 500, "req-1")
    clock = Monotonic()
    watcher = billing_as(database, this_process(), clock)
    assert watcher.sweep() == 0  # first seen now
    clock.now += 29
    elsewhere.heartbeat()  # it beats: alive, and watched afresh from the next sweep
    assert watcher.sweep() == 0
    clock.now += 29
    assert watcher.sweep() == 0
    clock.now += 1
    assert watcher.sweep() == 1
    assert watcher.keys.get(key.id).reserved_nanos == 0
    assert watcher.processes is not None and _registered(watcher) == [watcher.processes.owner]


def test_a_process_taken_for_dead_registers_again_when_it_beats(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    slow = billing_as(database, ELSEWHERE)
    key = slow.keys.create("k", balance="1").key
    slow.admit(key, "m", PRICES, 1000, 500, "req-1")
    clock = Monotonic()
    watcher = billing_as(database, this_process(), clock)
    watcher.sweep()
    clock.now += 30
    assert watcher.sweep() == 1
    with caplog.at_level(logging.WARNING, logger="loupe.billing.processes"):
        slow.heartbeat()
    assert any("took this one for dead" in m for m in caplog.messages)
    assert slow.processes is not None and slow.processes.owner in _registered(watcher)
    later = slow.admit(key, "m", PRICES, 10, 10, "req-2")  # holds again, and they are kept
    assert watcher.sweep() == 0
    assert [r.request_id for r in watcher.ledger.open_reservations()] == [later.request_id]


def test_retiring_releases_what_the_process_still_holds(database: Database) -> None:
    leaving = billing_as(database, this_process())
    key = leaving.keys.create("k", balance="1").key
    leaving.admit(key, "m", PRICES, 1000, 500, "req-1")
    leaving.retire()
    assert leaving.ledger.open_reservations() == [] and _registered(leaving) == []
    assert leaving.keys.get(key.id).reserved_nanos == 0


def test_reservations_without_an_owner_wait_for_max_hold(database: Database) -> None:
    clock = FakeClock()
    unowned = Billing(database, InProcessRateLimiter(), clock=clock, max_hold=timedelta(minutes=10))
    key = unowned.keys.create("k", balance="1").key
    unowned.admit(key, "m", PRICES, 1000, 500, "req-1")
    assert unowned.ledger.open_reservations()[0].owner is None
    clock.advance(minutes=9)
    assert unowned.sweep() == 0
    clock.advance(minutes=2)
    assert unowned.sweep() == 1


def test_a_heartbeat_keeps_beating_through_failures_until_stopped() -> None:
    beats: list[int] = []
    third = threading.Event()

    def beat() -> None:
        beats.append(len(beats))
        if len(beats) == 3:
            third.set()
        if len(beats) == 1:
            raise RuntimeError("the database is away")

    heartbeat = Heartbeat(beat, interval_s=0.01)
    heartbeat.start()
    assert third.wait(30)
    heartbeat.stop()
    assert len(beats) >= 3  # the failed first beat did not end it
    assert "loupe-heartbeat" not in {t.name for t in threading.enumerate()}


def _registered(billing: Billing) -> list[str]:
    with billing.db.read() as conn:
        return list(conn.execute(sa.select(processes.c.id).order_by(processes.c.id)).scalars())
