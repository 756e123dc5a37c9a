"""The database connection: URL normalisation, engine creation and SQLite's pragmas.

SQLite runs in WAL mode with `synchronous=FULL` (a committed settle survives a power cut) and a
busy timeout, and write transactions start with `BEGIN IMMEDIATE` so that two writers queue
instead of failing when one upgrades a read lock. PostgreSQL runs at READ COMMITTED; balance
changes are single conditional UPDATEs, which PostgreSQL re-checks after waiting on the row lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from loupe.errors import ConfigError, ServiceUnavailable

DEFAULT_SQLITE_FILE = "loupe.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_IMMEDIATE = "loupe_begin_immediate"


def normalize_url(db: str) -> str:
    """A `--db` value as a SQLAlchemy URL.

    A plain path is a SQLite file; `postgresql://` and `postgres://` use the psycopg 3 driver.
    Raises ConfigError for any other scheme.
    """
    if "://" not in db:
        return f"sqlite:///{Path(db)}"
    try:
        url = make_url(db)
    except sa.exc.ArgumentError:
        raise ConfigError(f"--db is not a database URL: {_redacted(db)}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend in {"postgresql", "postgres"} and driver in {"", "psycopg"}:
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if backend == "sqlite" and driver in {"", "pysqlite"}:
        return url.render_as_string(hide_password=False)
    raise ConfigError(f"--db must be a SQLite path or a postgresql:// URL, not {_redacted(db)}")


def _redacted(db: str) -> str:
    try:
        return make_url(db).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable>"


@dataclass(frozen=True, slots=True)
class Database:
    """An engine and the two kinds of transaction billing uses.

    `read()` is a plain transaction; `write()` takes SQLite's write lock at BEGIN (on PostgreSQL
    it is an ordinary transaction). Both commit on success and roll back on an exception.
    """

    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _unavailable_as_error(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with _unavailable_as_error(), self.engine.execution_options(**{_IMMEDIATE: True}).begin() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _unavailable_as_error() -> Iterator[None]:
    # The boundary with the database driver: an unreachable or locked database is a 503, not a 500.
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise ServiceUnavailable(f"the billing database is unavailable: {exc.orig}") from exc


def open_database(db: str, **engine_options: Any) -> Database:
    """Create the engine for a `--db` value; no connection is made until first use."""
    url = make_url(normalize_url(db))
    engine = sa.create_engine(url, **engine_options)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, url)
    return Database(engine)


def _configure_sqlite(engine: Engine, url: URL) -> None:
    in_memory = url.database in {None, "", ":memory:"}

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (SQLAlchemy's recipe).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
