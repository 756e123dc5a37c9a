"""The billing schema as SQLAlchemy Core tables: API keys, open reservations, the ledger, and the
serving processes that hold reservations.

Money columns (`MONEY_COLUMNS`) are BIGINT nano-units (see `money`). SQLite would turn an
overflowing integer sum into a REAL: there, triggers made by migration 0002 refuse any money value
that is not an integer. Timestamps are stored in UTC and read back as aware UTC datetimes on every
backend. The migrations in `migrations/versions` create exactly this schema; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored in UTC; SQLite keeps no zone, so UTC is implied there."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("billing timestamps must be timezone-aware")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    # sha256 hex of the secret; the secret itself is never stored.
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("secret_hint", sa.String(16), nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
    # NULL balance: unlimited. reserved: the sum of this key's open reservations.
    sa.Column("balance", sa.BigInteger, nullable=True),
    sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rpm", sa.Integer, nullable=True),
    sa.Column("tpm", sa.Integer, nullable=True),
    # NULL: every model; otherwise a JSON list of model ids.
    sa.Column("models", sa.JSON, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False, index=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    # The `processes` row of the server that holds it; NULL: made before owners were recorded.
    # No foreign key: a process found dead loses its row first, then its reservations.
    sa.Column("owner", sa.String(32), nullable=True, index=True),
)

# Serving processes, each alive while its `beats` counter moves (see `processes`).
processes = sa.Table(
    "processes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    # The kernel boot and pid namespace it ran in, and its start time there: with these another
    # process on the same machine can tell at once that it has exited. NULL where unknown.
    sa.Column("machine", sa.String(100), nullable=True),
    sa.Column("start_ticks", sa.BigInteger, nullable=True),
    sa.Column("beats", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("started_at", UtcDateTime, nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(32), sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("charged", sa.Boolean, nullable=False),
    sa.Column("text_tokens", sa.Integer, nullable=False),
    sa.Column("image_tokens", sa.Integer, nullable=False),
    sa.Column("video_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("cost", sa.BigInteger, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=False),
    # The UTC day of finished_at, kept as a column so reports group by day on any backend.
    sa.Column("day", sa.Date, nullable=False),
    # What the client tagged the request with (OpenAI's `user`, `safety_identifier`, `metadata`).
    sa.Column("user", sa.String(256), nullable=True),
    sa.Column("safety_identifier", sa.String(64), nullable=True),
    sa.Column("request_metadata", sa.JSON, nullable=True),
    sa.Index("ix_ledger_key_id_finished_at", "key_id", "finished_at"),
    sa.Index("ix_ledger_finished_at", "finished_at"),
)

# Every money column, by table: BIGINT nano-units, guarded on SQLite by migration 0002's triggers.
MONEY_COLUMNS = {"api_keys": ("balance", "reserved"), "reservations": ("amount",), "ledger": ("cost",)}
