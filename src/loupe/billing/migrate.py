"""Schema migrations, run programmatically: at start-up and from `loupe db upgrade`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from loupe.billing.db import Database, open_database

_SCRIPTS = Path(__file__).with_name("migrations")
# Any constant: several processes starting together on PostgreSQL take turns to migrate.
_PG_LOCK_ID = 0x4C6F757065


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the billing migrations have no head"
    return head


def upgrade(db: str | Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (the newest by default); a no-op when it is already there."""
    _migrate(db, command.upgrade, revision)


def downgrade(db: str | Database, revision: str) -> None:
    """Take the schema back to `revision`, for an operator returning to an older release."""
    _migrate(db, command.downgrade, revision)


def _migrate(db: str | Database, step: Callable[[Config, str], None], revision: str) -> None:
    database = open_database(db) if isinstance(db, str) else db
    try:
        with database.write() as conn:
            if database.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_ID})")
            config = _config()
            config.attributes["connection"] = conn
            step(config, revision)
    finally:
        if isinstance(db, str):
            database.dispose()


def current_revision(db: Database) -> str | None:
    """The revision the database is at; None when it was never migrated."""
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()
