"""Reservations carry the process that holds them; money stays integer on SQLite.

- `processes`: one row per serving process, alive while its `beats` counter moves.
- `reservations.owner`: the process holding each reservation (NULL for older rows).
- SQLite only: a money value that an overflowing sum turned into a REAL (the float a balance of
  9223372036 topped up by 1 became) is set to the nearest integer the column holds, with a
  warning naming the row; then triggers refuse any money value that is not an integer, so
  SQLite can no longer store one. PostgreSQL's BIGINT already refuses to overflow.

Every integer amount is carried over unchanged: no column's type changes and no table is copied.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import logging
import math

import sqlalchemy as sa
from alembic import op

from loupe.billing.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_MAX, _MIN = 2**63 - 1, -(2**63)
# Frozen here, as this revision made them: table -> (primary key, money columns).
_MONEY = {
    "api_keys": ("id", ("balance", "reserved")),
    "reservations": ("request_id", ("amount",)),
    "ledger": ("request_id", ("cost",)),
}
_log = logging.getLogger("loupe.billing.migrations")


def upgrade() -> None:
    op.create_table(
        "processes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("machine", sa.String(100), nullable=True),
        sa.Column("start_ticks", sa.BigInteger, nullable=True),
        sa.Column("beats", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_processes"),
    )
    op.add_column("reservations", sa.Column("owner", sa.String(32), nullable=True))
    op.create_index("ix_reservations_owner", "reservations", ["owner"])
    if op.get_bind().dialect.name == "sqlite":
        for table, (key, columns) in _MONEY.items():
            for column in columns:
                _repair(table, key, column)
            for event in ("INSERT", "UPDATE"):
                op.execute(_trigger(table, columns, event))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _MONEY:
            for event in ("INSERT", "UPDATE"):
                op.execute(f"DROP TRIGGER IF EXISTS {_trigger_name(table, event)}")
    op.drop_index("ix_reservations_owner", "reservations")
    with op.batch_alter_table("reservations") as batch:
        batch.drop_column("owner")
    op.drop_table("processes")


def _repair(table: str, key: str, column: str) -> None:
    bind = op.get_bind()
    found = bind.execute(sa.text(f"SELECT {key}, {column} FROM {table} WHERE typeof({column}) = 'real'")).all()
    for row_id, value in found:
        nearest = _nearest(value)
        _log.warning(
            "%s %s: %s was stored as the float %r (a sum past the largest amount); set to %d nano-units",
            table, row_id, column, value, nearest,
        )
        bind.execute(
            sa.text(f"UPDATE {table} SET {column} = :nearest WHERE {key} = :row_id"),
            {"nearest": nearest, "row_id": row_id},
        )


def _nearest(value: float) -> int:
    if math.isinf(value):
        return _MAX if value > 0 else _MIN
    return max(_MIN, min(_MAX, round(value)))


def _trigger_name(table: str, event: str) -> str:
    return f"money_is_integer_{table}_{event.lower()}"


def _trigger(table: str, columns: tuple[str, ...], event: str) -> str:
    not_integer = " OR ".join(f"typeof(NEW.{c}) NOT IN ('integer', 'null')" for c in columns)
    return (
        f"CREATE TRIGGER {_trigger_name(table, event)} BEFORE {event} ON {table} WHEN {not_integer} "
        f"BEGIN SELECT RAISE(ABORT, '{table}: money must be integer nano-units within the BIGINT range'); END"
    )
