"""Billing fixtures: SQLite in tmp_path, and real PostgreSQL and Redis servers on loopback.

Database tests take `db_url` (or `database` / `billing`) and run once per backend. A missing
server binary fails the session loudly with an install hint; nothing is skipped.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from loupe.billing import Billing, Database, InProcessRateLimiter, open_database, upgrade

from .servers import PostgresServer, running_postgres, running_redis


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        with running_redis() as url:
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


def _fresh_postgres_database(server: PostgresServer) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_postgres_database(server: PostgresServer, name: str) -> None:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'loupe.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = _fresh_postgres_database(server)
    yield server.url(name)
    _drop_postgres_database(server, name)


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A migrated database."""
    db = open_database(db_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def billing(database: Database) -> Billing:
    return Billing(database, InProcessRateLimiter())


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    """A process on this machine, to stand for a serving process that will be killed."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()
