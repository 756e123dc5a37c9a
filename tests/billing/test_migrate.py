from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from loupe.billing import open_database, upgrade
from loupe.billing.migrate import current_revision, head_revision
from loupe.billing.tables import metadata


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
