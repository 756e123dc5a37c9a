"""Initial billing schema: api_keys, reservations, ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from loupe.billing.tables import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("secret_hint", sa.String(16), nullable=False),
        sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("balance", sa.BigInteger, nullable=True),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rpm", sa.Integer, nullable=True),
        sa.Column("tpm", sa.Integer, nullable=True),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("secret_hash", name="uq_api_keys_secret_hash"),
    )
    op.create_table(
        "reservations",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_reservations"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name="fk_reservations_key_id_api_keys"
        ),
    )
    op.create_index("ix_reservations_key_id", "reservations", ["key_id"])
    op.create_index("ix_reservations_created_at", "reservations", ["created_at"])
    op.create_table(
        "ledger",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("charged", sa.Boolean, nullable=False),
        sa.Column("text_tokens", sa.Integer, nullable=False),
        sa.Column("image_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.BigInteger, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_ledger"),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"], name="fk_ledger_key_id_api_keys"),
    )
    op.create_index("ix_ledger_key_id_finished_at", "ledger", ["key_id", "finished_at"])
    op.create_index("ix_ledger_finished_at", "ledger", ["finished_at"])


def downgrade() -> None:
    op.drop_table("ledger")
    op.drop_table("reservations")
    op.drop_table("api_keys")
