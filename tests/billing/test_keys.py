from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from loupe.billing import Billing, Database, KeyStore
from loupe.billing.keys import SECRET_PREFIX, hash_secret
from loupe.billing.money import MAX_NANOS
from loupe.billing.tables import metadata
from loupe.errors import InvalidRequest, NotFound


def test_create_shows_the_secret_once_and_stores_its_hash(database: Database) -> None:
    store = KeyStore(database)
    created = store.create("alice", balance="12.5", rpm=60, tpm=10_000, models=["m1", "m2"])
    secret = created.secret
    assert secret.startswith(SECRET_PREFIX) and len(secret) == len(SECRET_PREFIX) + 40
    key = store.get(created.key.id)
    assert key == created.key
    assert key.balance_nanos == 12_500_000_000 and key.reserved_nanos == 0
    assert key.models == frozenset({"m1", "m2"}) and (key.rpm, key.tpm) == (60, 10_000)
    assert store.find_by_secret(secret) == key
    with database.read() as conn:
        stored = conn.execute(sa.text("SELECT secret_hash FROM api_keys")).scalar_one()
    assert stored == hash_secret(secret)


def test_the_secret_appears_nowhere_in_the_database(database: Database, db_url: str, billing: Billing) -> None:
    secret = billing.keys.create("bob", balance="1").secret
    billing.authenticate(secret)
    with database.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                assert all(secret not in str(value) for value in row)
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the database, its WAL and shared memory
            assert secret.encode() not in file.read_bytes()
            assert secret[len(SECRET_PREFIX):].encode() not in file.read_bytes()


def test_list_revoke_and_top_up(database: Database) -> None:
    store = KeyStore(database)
    a = store.create("a", balance=1).key
    b = store.create("b").key
    assert [k.id for k in store.list_keys()] == [a.id, b.id]
    revoked = store.revoke(a.id)
    assert revoked.revoked and store.revoke(a.id).revoked_at == revoked.revoked_at
    assert [k.id for k in store.list_keys(include_revoked=False)] == [b.id]
    assert store.top_up(a.id, "0.25").balance_nanos == 1_250_000_000
    assert store.top_up(a.id, Decimal("0.000000001")).balance_nanos == 1_250_000_001


def test_unlimited_keys_have_no_balance_to_top_up(database: Database) -> None:
    store = KeyStore(database)
    key = store.create("open").key
    assert key.balance_nanos is None and key.available_nanos is None and key.models is None
    with pytest.raises(InvalidRequest):
        store.top_up(key.id, 1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": " "},
        {"name": "x", "balance": "-1"},
        {"name": "x", "balance": "0.0000000001"},
        {"name": "x", "balance": "lots"},
        {"name": "x", "rpm": 0},
        {"name": "x", "tpm": -5},
        {"name": "x", "models": []},
        {"name": "x", "models": ["m", ""]},
    ],
)
def test_invalid_keys_are_refused(database: Database, kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        KeyStore(database).create(**kwargs)  # type: ignore[arg-type]


def test_unknown_ids_and_bad_top_ups(database: Database) -> None:
    store = KeyStore(database)
    key = store.create("k", balance=1).key
    with pytest.raises(NotFound):
        store.get("key_missing")
    with pytest.raises(NotFound):
        store.revoke("key_missing")
    for amount in (0, "-1"):
        with pytest.raises(InvalidRequest):
            store.top_up(key.id, amount)
    assert store.find_by_secret("lp-not-a-real-secret") is None


def test_a_balance_beyond_the_column_is_refused_naming_the_field(database: Database) -> None:
    store = KeyStore(database)
    assert store.create("most", balance="9223372036.854775807").key.balance_nanos == MAX_NANOS
    for beyond in ("1e10", "9223372036.854775808"):
        with pytest.raises(InvalidRequest) as caught:
            store.create("x", balance=beyond)
        assert caught.value.param == "balance" and "9223372036.854775807" in caught.value.message
    assert [k.name for k in store.list_keys()] == ["most"]


def test_a_top_up_that_would_overflow_is_refused_and_changes_nothing(database: Database) -> None:
    store = KeyStore(database)
    key = store.create("k", balance="9223372036").key
    with pytest.raises(InvalidRequest) as caught:
        store.top_up(key.id, "1")  # the case: it read back as 9223372036.999999488
    assert caught.value.param == "amount" and "top up at most 0.854775807" in caught.value.message
    assert store.get(key.id).balance_nanos == 9_223_372_036_000_000_000
    with pytest.raises(InvalidRequest) as beyond:
        store.top_up(key.id, "1e10")
    assert beyond.value.param == "amount"
    assert store.top_up(key.id, "0.854775807").balance_nanos == MAX_NANOS
    with pytest.raises(InvalidRequest):
        store.top_up(key.id, "0.000000001")
    assert store.get(key.id).balance_nanos == MAX_NANOS
