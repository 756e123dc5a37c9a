"""Alembic environment: migrate the connection that `loupe.billing.migrate` hands over."""

from __future__ import annotations

from alembic import context

from loupe.billing.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("billing migrations run through loupe.billing.migrate.upgrade(db_url)")

# Batch mode lets later revisions alter tables on SQLite, which has little ALTER TABLE.
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
