from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from loupe.billing import Billing, Database, InProcessRateLimiter, from_nanos, open_database, upgrade
from loupe.billing.migrate import current_revision, downgrade, head_revision
from loupe.billing.money import MAX_NANOS
from loupe.billing.tables import api_keys, ledger, metadata, reservations


def test_upgrade_creates_the_schema_and_twice_is_a_no_op(db_url: str) -> None:
    upgrade(db_url)
    db = open_database(db_url)
    try:
        assert current_revision(db) == head_revision()
        with db.read() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            before = _schema(conn)
        assert {"api_keys", "reservations", "ledger", "alembic_version"} <= tables
        upgrade(db_url)
        with db.read() as conn:
            assert _schema(conn) == before
        assert current_revision(db) == head_revision()
    finally:
        db.dispose()


def test_migrations_match_the_table_definitions(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade(db)
        with db.read() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        assert diff == []
    finally:
        db.dispose()


def test_a_fresh_database_has_no_revision(db_url: str) -> None:
    db = open_database(db_url)
    try:
        assert current_revision(db) is None
    finally:
        db.dispose()


def _schema(conn: sa.Connection) -> dict[str, list[str]]:
    inspector = sa.inspect(conn)
    return {
        table: sorted(c["name"] for c in inspector.get_columns(table))
        + sorted(str(i["name"]) for i in inspector.get_indexes(table))
        for table in inspector.get_table_names()
    }


# Amounts an existing database may hold, edges included, in nano-units.
BALANCES = [None, 0, 1, 12_345_678_901, 10**18, MAX_NANOS]
COSTS = [0, 1, 987_654_321, MAX_NANOS]


def _fill_at_0001(db: Database) -> None:
    """Keys, open reservations and ledger rows, written as revision 0001's code wrote them."""
    at = datetime.now(UTC)  # the reservations are of requests still running
    old_reservations = sa.table("reservations", *(sa.column(c.name, c.type) for c in reservations.c if c.name != "owner"))
    with db.write() as conn:
        for i, balance in enumerate(BALANCES):
            conn.execute(sa.insert(api_keys).values(
                id=f"key_{i}", name=f"k{i}", secret_hash=f"{i:064x}", secret_hint="lp-x", is_admin=False,
                balance=balance, reserved=0 if balance is None else min(balance, 7), created_at=at,
            ))
            if balance:
                conn.execute(sa.insert(old_reservations).values(
                    request_id=f"held-{i}", key_id=f"key_{i}", model="m", amount=min(balance, 7), created_at=at
                ))
        for i, cost in enumerate(COSTS):
            conn.execute(sa.insert(ledger).values(
                request_id=f"done-{i}", key_id="key_0", model="m", status=200, charged=True, text_tokens=i,
                image_tokens=0, completion_tokens=1, cost=cost, created_at=at, finished_at=at, day=at.date(),
            ))


def test_an_existing_database_upgrades_to_the_same_amounts(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade(db, "0001")
        _fill_at_0001(db)
        upgrade(db)
        assert current_revision(db) == head_revision()
        billing = Billing(db, InProcessRateLimiter())
        keys = {k.id: k for k in billing.keys.list_keys()}
        expected = {f"key_{i}": None if b is None else from_nanos(b) for i, b in enumerate(BALANCES)}
        assert {i: None if k.balance_nanos is None else from_nanos(k.balance_nanos) for i, k in keys.items()} == expected
        assert {i: k.reserved_nanos for i, k in keys.items() if k.reserved_nanos} == {
            f"key_{i}": min(b, 7) for i, b in enumerate(BALANCES) if b
        }
        held = billing.ledger.open_reservations()
        assert {(r.request_id, r.amount_nanos, r.owner) for r in held} == {
            (f"held-{i}", min(b, 7), None) for i, b in enumerate(BALANCES) if b
        }
        for i, cost in enumerate(COSTS):
            entry = billing.ledger.entry(f"done-{i}")
            assert entry is not None and from_nanos(entry.outcome.cost_nanos) == from_nanos(cost)
        # Reservations an older release is holding carry no owner: the sweep leaves them to max_hold.
        assert billing.sweep() == 0 and len(billing.ledger.open_reservations()) == len(held)
    finally:
        db.dispose()


def test_a_downgrade_and_upgrade_again_keep_every_amount(db_url: str) -> None:
    db = open_database(db_url)
    try:
        upgrade(db, "0001")
        _fill_at_0001(db)
        upgrade(db)
        downgrade(db, "0001")
        with db.read() as conn:
            assert "processes" not in sa.inspect(conn).get_table_names()
            before = conn.execute(sa.select(api_keys.c.id, api_keys.c.balance).order_by(api_keys.c.id)).all()
        upgrade(db)
        with db.read() as conn:
            assert conn.execute(sa.select(api_keys.c.id, api_keys.c.balance).order_by(api_keys.c.id)).all() == before
        assert [row.balance for row in before] == BALANCES
    finally:
        db.dispose()


def test_sqlite_floats_left_by_an_overflow_become_the_nearest_amount(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = open_database(str(tmp_path / "loupe.db"))
    try:
        upgrade(db, "0001")
        _fill_at_0001(db)
        with db.write() as conn:  # what a top-up of 1 past 9223372036 did before 0002
            conn.execute(sa.text("UPDATE api_keys SET balance = balance + 1000000000 WHERE id = 'key_5'"))
            conn.execute(sa.text("UPDATE api_keys SET balance = 9223372036000000000 + 1000000000.0 WHERE id = 'key_4'"))
            kinds = conn.execute(sa.text("SELECT id, typeof(balance) FROM api_keys WHERE id IN ('key_4', 'key_5')")).all()
        assert sorted(kinds) == [("key_4", "real"), ("key_5", "real")]
        with caplog.at_level(logging.WARNING, logger="loupe.billing.migrations"):
            upgrade(db)
        with db.read() as conn:
            rows = conn.execute(sa.text("SELECT id, balance, typeof(balance) FROM api_keys WHERE id IN ('key_4', 'key_5')"))
            assert sorted(rows) == [("key_4", MAX_NANOS, "integer"), ("key_5", MAX_NANOS, "integer")]
        assert sum("key_4" in m or "key_5" in m for m in caplog.messages) == 2
    finally:
        db.dispose()


def test_sqlite_refuses_to_store_money_that_is_not_an_integer(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "loupe.db"))
    try:
        upgrade(db)
        billing = Billing(db, InProcessRateLimiter())
        key = billing.keys.create("k", balance=str(from_nanos(MAX_NANOS))).key
        for statement in (
            "UPDATE api_keys SET balance = balance + 1",  # the overflow SQLite would store as a REAL
            "UPDATE api_keys SET reserved = 0.5",
            "INSERT INTO reservations (request_id, key_id, model, amount, created_at) "
            "VALUES ('r', :key, 'm', 1e19, '2026-03-01 12:00:00')",
            "INSERT INTO ledger (request_id, key_id, model, status, charged, text_tokens, image_tokens, "
            "completion_tokens, cost, created_at, finished_at, day) VALUES "
            "('l', :key, 'm', 200, 1, 1, 0, 1, 2.5, '2026-03-01', '2026-03-01', '2026-03-01')",
        ):
            with pytest.raises(sa.exc.IntegrityError, match="money must be integer"), db.write() as conn:
                conn.execute(sa.text(statement), {"key": key.id})
        assert billing.keys.get(key.id).balance_nanos == MAX_NANOS
    finally:
        db.dispose()
