from __future__ import annotations

from pathlib import Path

import pytest

from loupe.billing import normalize_url, open_database
from loupe.billing.db import SQLITE_BUSY_TIMEOUT_MS
from loupe.errors import ConfigError, ServiceUnavailable

from .servers import free_port


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("loupe.db", "sqlite:///loupe.db"),
        ("/var/lib/loupe/loupe.db", "sqlite:////var/lib/loupe/loupe.db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("postgresql://u:p@127.0.0.1:5432/loupe", "postgresql+psycopg://u:p@127.0.0.1:5432/loupe"),
        ("postgres://u@127.0.0.1/loupe", "postgresql+psycopg://u@127.0.0.1/loupe"),
        ("postgresql+psycopg://127.0.0.1/loupe", "postgresql+psycopg://127.0.0.1/loupe"),
    ],
)
def test_urls_are_normalised(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize("bad", ["mysql://127.0.0.1/x", "postgresql+asyncpg://127.0.0.1/x", "::://"])
def test_other_databases_are_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        normalize_url(bad)


def test_the_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        normalize_url("mysql://user:hunter2@127.0.0.1/x")
    assert "hunter2" not in caught.value.message


def test_sqlite_runs_in_wal_mode_with_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    db = open_database(str(tmp_path / "loupe.db"))
    try:
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_an_unreachable_database_is_a_service_error() -> None:
    db = open_database(f"postgresql://loupe@127.0.0.1:{free_port()}/loupe", connect_args={"connect_timeout": 2})
    try:
        with pytest.raises(ServiceUnavailable), db.read():
            pass
    finally:
        db.dispose()
