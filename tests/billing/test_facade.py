from __future__ import annotations

import pytest

from loupe.billing import Billing, Database, InProcessRateLimiter, Limits
from loupe.errors import (
    AccessDenied,
    FailedToAuth,
    InvalidApiKey,
    NotEnoughBalance,
    RateLimitExceeded,
    TokenLimitExceeded,
)

from .support import PRICES, usage


def test_authenticate(billing: Billing) -> None:
    created = billing.keys.create("k")
    assert billing.authenticate(created.secret) == created.key
    assert billing.authenticate(f"  {created.secret} ") == created.key
    for missing in (None, "", "   "):
        with pytest.raises(InvalidApiKey):
            billing.authenticate(missing)
    with pytest.raises(FailedToAuth):
        billing.authenticate("lp-" + "x" * 40)
    billing.keys.revoke(created.key.id)
    with pytest.raises(FailedToAuth):
        billing.authenticate(created.secret)


def test_check_model(billing: Billing) -> None:
    limited = billing.keys.create("k", models=["a"]).key
    billing.check_model(limited, "a")
    with pytest.raises(AccessDenied) as caught:
        billing.check_model(limited, "b")
    assert caught.value.code == "ACCESS_DENY" and caught.value.param == "model"
    with pytest.raises(AccessDenied):
        billing.admit(limited, "b", PRICES, 1, 1, "req-1")
    billing.check_model(billing.keys.create("all").key, "anything")


def test_admission_carries_the_reservation_and_rate_limit_numbers(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter(clock=lambda: 100.0))  # no refill meanwhile
    key = billing.keys.create("k", balance="1", rpm=10, tpm=10_000).key
    admission = billing.admit(key, "m", PRICES, 1000, 500, "req-1")
    assert admission.request_id == "req-1" and str(admission.reserved) == "0.002000000"
    info = admission.rate_limits
    assert (info.remaining_requests, info.remaining_tokens) == (9, 8500)
    billing.settle(admission, 200, usage(1000, 100))
    # 400 of the 1500 tokens drawn were not used: they are back.
    next_one = billing.admit(key, "m", PRICES, 0, 0, "req-2")
    assert next_one.rate_limits.remaining_tokens == 8900


def test_rate_limits_come_before_the_balance(billing: Billing) -> None:
    key = billing.keys.create("k", balance="1", rpm=1).key
    billing.admit(key, "m", PRICES, 1, 1, "req-1")
    with pytest.raises(RateLimitExceeded):
        billing.admit(key, "m", PRICES, 1, 1, "req-2")
    assert len(billing.ledger.open_reservations(key.id)) == 1


def test_a_refused_balance_does_not_spend_the_token_limit(database: Database) -> None:
    billing = Billing(database, InProcessRateLimiter(), model_limits={"m": Limits(tpm=2000)})
    poor = billing.keys.create("poor", balance="0.001").key
    with pytest.raises(NotEnoughBalance):
        billing.admit(poor, "m", PRICES, 1000, 500, "req-1")
    billing.keys.top_up(poor.id, "1")
    billing.admit(poor, "m", PRICES, 1000, 500, "req-2")  # the 1500 tokens were given back
    with pytest.raises(TokenLimitExceeded):
        billing.admit(poor, "m", PRICES, 1000, 500, "req-3")
