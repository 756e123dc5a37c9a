"""The ledger keeps what the client tagged a request with: user, safety_identifier, metadata.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("ledger", sa.Column("user", sa.String(256), nullable=True))
    op.add_column("ledger", sa.Column("safety_identifier", sa.String(64), nullable=True))
    op.add_column("ledger", sa.Column("request_metadata", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger") as batch:
        batch.drop_column("request_metadata")
        batch.drop_column("safety_identifier")
        batch.drop_column("user")
