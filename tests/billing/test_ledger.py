from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from loupe.billing import Billing, Database, InProcessRateLimiter, cost_nanos, format_money
from loupe.errors import DuplicateRequestId, FailedToAuth, NotEnoughBalance
from loupe.billing.keys import KeyStore
from loupe.billing.ledger import Ledger, Outcome

from .support import PRICES, FakeClock, usage

MAX_COST = cost_nanos(PRICES, 1000, 500)  # 0.002


def test_reserve_holds_and_settle_charges_the_actual_cost(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    held = billing.keys.get(key.id)
    assert held.reserved_nanos == MAX_COST == admission.reservation.amount_nanos
    assert held.available_nanos == 1_000_000_000 - MAX_COST

    settlement = billing.settle(admission, 200, usage(1000, 100, images=300))
    assert settlement.recorded and settlement.charged
    assert settlement.cost_nanos == cost_nanos(PRICES, 1000, 100) == 1_200_000
    after = billing.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (1_000_000_000 - 1_200_000, 0)
    entry = billing.ledger.entry("req-1")
    assert entry is not None
    assert entry.outcome == Outcome(200, True, 700, 300, 100, 1_200_000)
    assert billing.ledger.open_reservations() == []


def test_settling_the_same_request_twice_charges_once(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    first = billing.settle(admission, 200, usage(1000, 500))
    second = billing.settle(admission, 200, usage(1000, 500))
    third = billing.cancel(admission, 500)
    assert (first.recorded, second.recorded, third.recorded) == (True, False, False)
    assert billing.keys.get(key.id).balance_nanos == 1_000_000_000 - MAX_COST
    assert billing.usage(None, *_all_time()).totals.requests == 1


def test_concurrent_settles_of_one_request_charge_once(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    start = threading.Barrier(8)

    def settle() -> bool:
        start.wait()
        return billing.settle(admission, 200, usage(1000, 500)).recorded

    with ThreadPoolExecutor(8) as pool:
        recorded = list(pool.map(lambda _: settle(), range(8)))
    assert recorded.count(True) == 1
    assert billing.keys.get(key.id).balance_nanos == 1_000_000_000 - MAX_COST


def test_499_charges_what_was_generated(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    settlement = billing.settle(admission, 499, usage(1000, 42))
    assert settlement.charged and settlement.cost_nanos == cost_nanos(PRICES, 1000, 42)
    assert billing.keys.get(key.id).balance_nanos == 1_000_000_000 - settlement.cost_nanos


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
def test_errors_are_recorded_but_not_charged(billing: Billing, status: int) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    settlement = billing.settle(admission, status, usage(1000, 17))
    assert settlement.recorded and not settlement.charged and settlement.cost_nanos == 0
    after = billing.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (1_000_000_000, 0)
    entry = billing.ledger.entry("req-1")
    assert entry is not None and entry.outcome.status == status and entry.outcome.cost_nanos == 0


def test_cancel_releases_without_charge(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    billing.cancel(billing.admit(key, "m", PRICES, 1000, 500, "req-1"), 503)
    after = billing.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (1_000_000_000, 0)
    with pytest.raises(ValueError):
        billing.cancel(billing.admit(key, "m", PRICES, 1, 1, "req-2"), 200)


def test_not_enough_balance_holds_nothing(billing: Billing) -> None:
    key = billing.keys.create("k", balance="0.003").key
    billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    with pytest.raises(NotEnoughBalance) as caught:
        billing.admit(key, "m", PRICES, 1000, 500, "req-2")
    assert caught.value.code == "NOT_ENOUGH_BALANCE"
    assert "0.002" in caught.value.message and "0.001" in caught.value.message
    assert billing.keys.get(key.id).reserved_nanos == MAX_COST


def test_unlimited_keys_are_always_admitted(billing: Billing) -> None:
    key = billing.keys.create("open").key
    for i in range(3):
        billing.settle(billing.admit(key, "m", PRICES, 10**6, 10**6, f"req-{i}"), 200, usage(10**6, 10**6))
    assert billing.keys.get(key.id).balance_nanos is None
    assert billing.usage(key.id, *_all_time()).totals.cost == 9


def test_a_request_id_is_admitted_once(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    admission = billing.admit(key, "m", PRICES, 1, 1, "req-1")
    with pytest.raises(DuplicateRequestId):
        billing.admit(key, "m", PRICES, 1, 1, "req-1")
    billing.settle(admission, 200, usage(1, 1))
    with pytest.raises(DuplicateRequestId):
        billing.admit(key, "m", PRICES, 1, 1, "req-1")
    assert billing.keys.get(key.id).reserved_nanos == 0


def test_a_key_revoked_after_authentication_is_not_admitted(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1").key
    billing.keys.revoke(key.id)
    with pytest.raises(FailedToAuth):
        billing.admit(key, "m", PRICES, 1, 1, "req-1")


@pytest.mark.timeout(120)
def test_concurrent_admissions_never_overdraw(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter())
    balance = 10 * MAX_COST + MAX_COST // 2  # covers 10.5 maximum-cost requests
    key = billing.keys.create("k", balance=format_money(balance)).key
    assert key.balance_nanos == balance
    start = threading.Barrier(50)

    def attempt(i: int) -> object:
        start.wait()
        try:
            return billing.admit(key, "m", PRICES, 1000, 500, f"req-{i}")
        except NotEnoughBalance as exc:
            return exc

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(attempt, range(50)))
    admitted = [r for r in results if not isinstance(r, NotEnoughBalance)]
    assert len(admitted) == balance // MAX_COST == 10
    assert sum(isinstance(r, NotEnoughBalance) for r in results) == 40
    assert billing.keys.get(key.id).reserved_nanos == 10 * MAX_COST

    with ThreadPoolExecutor(10) as pool:
        settled = list(pool.map(lambda a: billing.settle(a, 200, usage(1000, 500)), admitted))
    charged = sum(s.cost_nanos for s in settled)
    assert charged == 10 * MAX_COST <= balance
    after = billing.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (balance - charged, 0)


def test_stale_reservations_are_released(database: Database) -> None:
    clock = FakeClock()
    keys, ledger = KeyStore(database, clock), Ledger(database, clock)
    key = keys.create("k", balance="1").key
    crashed = ledger.reserve(key.id, "m", "req-old", 500)
    clock.advance(minutes=30)
    ledger.reserve(key.id, "m", "req-new", 200)
    clock.advance(minutes=45)
    assert ledger.release_abandoned(timedelta(hours=1)) == [crashed]
    assert [r.request_id for r in ledger.open_reservations(key.id)] == ["req-new"]
    assert keys.get(key.id).reserved_nanos == 200
    assert ledger.release_abandoned(timedelta(hours=1)) == []

    # A late settle of the released request still charges, and does not touch others' holds.
    assert ledger.settle(crashed, Outcome(200, True, 10, 0, 5, 300))
    after = keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (1_000_000_000 - 300, 200)


def _all_time() -> tuple[datetime, datetime]:
    return datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
