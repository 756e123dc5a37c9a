"""Sums that would leave BIGINT's range are refused or held at its edge, never stored wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from loupe.billing import Billing, Database, InProcessRateLimiter, Limits, prices_of
from loupe.billing.ledger import Ledger, Outcome
from loupe.billing.money import MAX_AMOUNT, MAX_NANOS, MIN_NANOS
from loupe.billing.tables import api_keys
from loupe.errors import InvalidRequest, NotEnoughBalance

from .support import usage

# One completion token costs 1 of the currency: 10**9 tokens cost 10**18 nano-units.
BIG = prices_of("0", "1000000")


def test_a_request_whose_maximum_cost_is_beyond_the_column_is_a_400(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter(), model_limits={"m": Limits(rpm=1)})
    key = billing.keys.create("open").key
    with pytest.raises(InvalidRequest) as caught:
        billing.admit(key, "m", BIG, 0, 10 * 10**9, "req-1")
    assert caught.value.param == "max_tokens" and str(MAX_AMOUNT) in caught.value.message
    assert billing.ledger.open_reservations() == [] and billing.keys.get(key.id).reserved_nanos == 0
    billing.admit(key, "m", BIG, 0, 1, "req-2")  # the refusal took nothing from the rate limit


def test_holds_of_an_unlimited_key_that_would_overflow_are_refused(billing: Billing) -> None:
    key = billing.keys.create("open").key
    first = billing.admit(key, "m", BIG, 0, 9 * 10**9, "req-1")  # 9e9 of the currency held
    with pytest.raises(InvalidRequest) as caught:
        billing.admit(key, "m", BIG, 0, 10**9, "req-2")
    assert caught.value.param == "max_tokens" and "already holds 9000000000" in caught.value.message
    assert [r.request_id for r in billing.ledger.open_reservations()] == ["req-1"]
    assert billing.keys.get(key.id).reserved_nanos == first.reservation.amount_nanos == 9 * 10**18
    billing.admit(key, "m", BIG, 0, 2 * 10**8, "req-3")  # what still fits is admitted
    assert billing.keys.get(key.id).reserved_nanos == 9_200_000_000 * 10**9


def test_the_largest_balance_admits_its_whole_amount_exactly(billing: Billing) -> None:
    key = billing.keys.create("rich", balance=str(MAX_AMOUNT)).key
    exact = prices_of("0", "9223372036854775.807")  # one completion token costs MAX_NANOS
    admission = billing.admit(key, "m", exact, 0, 1, "req-1")
    assert billing.keys.get(key.id).available_nanos == 0
    with pytest.raises(NotEnoughBalance):
        billing.admit(key, "m", exact, 0, 1, "req-2")
    billing.settle(admission, 200, usage(0, 1))
    after = billing.keys.get(key.id)
    assert (after.balance_nanos, after.reserved_nanos) == (0, 0)


def test_a_negative_balance_far_below_zero_does_not_break_admission(database: Database, billing: Billing) -> None:
    key = billing.keys.create("debtor", balance="0").key
    with database.write() as conn:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == key.id).values(balance=MIN_NANOS + 5))
    with pytest.raises(NotEnoughBalance):  # balance - amount would leave the range: still a plain refusal
        billing.admit(key, "m", BIG, 0, 9 * 10**9, "req-1")


def test_a_charge_past_the_lowest_balance_holds_it_there(database: Database) -> None:
    ledger = Ledger(database)
    billing = Billing(database, InProcessRateLimiter())
    key = billing.keys.create("debtor", balance="0").key
    held = ledger.reserve(key.id, "m", "req-1", 0)
    with database.write() as conn:
        conn.execute(sa.update(api_keys).where(api_keys.c.id == key.id).values(balance=MIN_NANOS + 5))
    assert ledger.settle(held, Outcome(200, True, 1, 0, 1, 100))
    assert billing.keys.get(key.id).balance_nanos == MIN_NANOS
    entry = ledger.entry("req-1")
    assert entry is not None and entry.outcome.cost_nanos == 100  # the ledger keeps the whole charge


def test_usage_sums_beyond_one_column_value_exactly(database: Database, billing: Billing) -> None:
    ledger = Ledger(database)
    key = billing.keys.create("open").key
    for i in range(3):
        ledger.settle(ledger.reserve(key.id, "m", f"req-{i}", 0), Outcome(200, True, 1, 0, 1, MAX_NANOS))
    report = billing.usage(key.id, datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert report.totals.cost == 3 * MAX_AMOUNT
    assert report.as_dict()["totals"]["cost"] == "27670116110.564327421"


def test_costs_and_holds_outside_the_range_are_programming_errors(database: Database, billing: Billing) -> None:
    ledger = Ledger(database)
    key = billing.keys.create("open").key
    with pytest.raises(ValueError):
        ledger.reserve(key.id, "m", "req-1", MAX_NANOS + 1)
    held = ledger.reserve(key.id, "m", "req-2", 1)
    with pytest.raises(ValueError):
        ledger.settle(held, Outcome(200, True, 1, 0, 1, MAX_NANOS + 1))
