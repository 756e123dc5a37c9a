"""Alembic scripts for the billing schema; run them through `loupe.billing.migrate`."""
