"""The column types as the database itself reports them: money is BIGINT, nothing is a float."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from loupe.billing import Billing, Database, InProcessRateLimiter, open_database, prices_of, upgrade
from loupe.billing.tables import MONEY_COLUMNS, metadata

from .support import usage

FLOATING = ("REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL")


def _declared_types(database: Database) -> dict[tuple[str, str], str]:
    """(table, column) -> the type the database declares, in its own catalogue."""
    with database.read() as conn:
        if database.dialect == "sqlite":
            return {
                (table, row[1]): str(row[2]).upper()
                for table in metadata.tables
                for row in conn.exec_driver_sql(f"PRAGMA table_info({table})")
            }
        rows = conn.execute(
            sa.text("SELECT table_name, column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema()")
        )
        return {(table, column): kind.upper() for table, column, kind in rows if table in metadata.tables}


def test_money_columns_are_bigint_and_no_column_is_a_float(database: Database) -> None:
    declared = _declared_types(database)
    assert {table for table, _ in declared} == set(metadata.tables)
    floats = {where: kind for where, kind in declared.items() if any(f in kind for f in FLOATING)}
    assert floats == {}
    money = {(table, column) for table, columns in MONEY_COLUMNS.items() for column in columns}
    assert money == {
        ("api_keys", "balance"), ("api_keys", "reserved"), ("reservations", "amount"), ("ledger", "cost")
    }
    assert {where: declared[where] for where in money} == {where: "BIGINT" for where in money}
    with database.read() as conn:  # the same through SQLAlchemy's reflection
        inspector = sa.inspect(conn)
        for table, column in money:
            reflected = next(c["type"] for c in inspector.get_columns(table) if c["name"] == column)
            assert isinstance(reflected, sa.BigInteger)


def test_sqlite_stores_every_amount_as_an_integer(tmp_path: Path) -> None:
    database = open_database(str(tmp_path / "loupe.db"))
    try:
        upgrade(database)
        billing = Billing(database, InProcessRateLimiter())
        key = billing.keys.create("k", balance="9223372036").key
        billing.keys.top_up(key.id, "0.854775807")
        admission = billing.admit(key, "m", prices_of("0.05", "0.15"), 1000, 100, "req-1")
        billing.admit(key, "m", prices_of("0.05", "0.15"), 1000, 100, "req-2")
        billing.settle(admission, 200, usage(1000, 7))
        with database.read() as conn:
            kinds = {
                f"{table}.{column}": {k for (k,) in conn.exec_driver_sql(f"SELECT DISTINCT typeof({column}) FROM {table}")}
                for table, columns in MONEY_COLUMNS.items()
                for column in columns
            }
        assert kinds == {where: {"integer"} for where in kinds}
    finally:
        database.dispose()
