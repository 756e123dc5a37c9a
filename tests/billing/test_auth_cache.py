"""Kept callers: a resolved key (or the open state) is reused for a while without a query, on
both database backends. Key changes made behind the server's back (another process, here the
billing facade itself) show once the time is up, at once for a fresh resolution or after
`forget`."""

from __future__ import annotations

import pytest

from loupe.billing import Billing
from loupe.errors import FailedToAuth, InvalidApiKey
from loupe.service import accounts as accounts_module
from loupe.service.accounts import Accounts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.asyncio
async def test_the_open_state_is_kept_until_the_time_is_up(billing: Billing, clock: Clock) -> None:
    accounts = Accounts(billing, cache_s=1.0, clock=clock)
    assert (await accounts.caller("anything")).key is None
    billing.keys.create("first")  # another process makes a key: the server stops running open
    clock.now += 0.9
    assert (await accounts.caller("anything")).key is None
    with pytest.raises(FailedToAuth):
        await accounts.caller("anything", fresh=True)
    clock.now += 0.2
    with pytest.raises(FailedToAuth):
        await accounts.caller("anything")
    with pytest.raises(InvalidApiKey):
        await accounts.caller(None)


@pytest.mark.asyncio
async def test_a_kept_key_lasts_until_the_time_is_up_or_it_is_forgotten(billing: Billing, clock: Clock) -> None:
    accounts = Accounts(billing, cache_s=1.0, clock=clock)
    created = billing.keys.create("alice")
    other = billing.keys.create("bob")
    billing.keys.create("carol")  # stays live: the server does not run open
    assert (await accounts.caller(created.secret)).key == created.key
    assert (await accounts.caller(other.secret)).key == other.key
    billing.keys.revoke(created.key.id)
    billing.keys.revoke(other.key.id)
    # Kept: still resolved (admission, a transaction, refuses the revoked key).
    assert (await accounts.caller(created.secret)).key == created.key
    with pytest.raises(FailedToAuth):
        await accounts.caller(created.secret, fresh=True)
    clock.now += 1.5
    with pytest.raises(FailedToAuth):
        await accounts.caller(created.secret)
    accounts.forget()
    with pytest.raises(FailedToAuth):
        await accounts.caller(other.secret)


@pytest.mark.asyncio
async def test_nothing_is_kept_without_a_cache_time(billing: Billing, clock: Clock) -> None:
    accounts = Accounts(billing, cache_s=0.0, clock=clock)
    assert (await accounts.caller("anything")).key is None
    created = billing.keys.create("alice")
    billing.keys.create("bob")
    assert (await accounts.caller(created.secret)).key == created.key
    billing.keys.revoke(created.key.id)
    with pytest.raises(FailedToAuth):
        await accounts.caller(created.secret)


@pytest.mark.asyncio
async def test_kept_keys_are_bounded(billing: Billing, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts_module, "_KEPT_KEYS", 2)
    accounts = Accounts(billing, cache_s=1.0, clock=clock)
    made = [billing.keys.create(f"k{i}") for i in range(3)]
    for key in made:
        assert (await accounts.caller(key.secret)).key == key.key
    assert len(accounts._keys) <= 2
    clock.now += 0.5
    for key in made:  # the evicted resolve again, the kept are reused: all still right
        assert (await accounts.caller(key.secret)).key == key.key
