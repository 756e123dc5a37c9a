"""Helpers of the end-to-end billing tests: the `loupe` CLI, and reading the server's database."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import sqlalchemy as sa

from loupe.billing import open_database


def loupe(*args: str, db: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loupe", *args, "--db", db], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def query(db: str, sql: str) -> list[Any]:
    """Rows of a query on a database the server also uses; the connection is closed after."""
    database = open_database(db)
    try:
        with database.read() as conn:
            return list(conn.execute(sa.text(sql)).mappings())
    finally:
        database.dispose()


def key_id(secret: str, db: str) -> str:
    rows = query(db, "select id, secret_hint from api_keys")
    return next(row["id"] for row in rows if secret.startswith(row["secret_hint"]))


def ledger(db: str) -> list[Any]:
    return query(db, "select * from ledger")
