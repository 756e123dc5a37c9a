"""A real `loupe serve` with its own SQLite database and an admin key, configured by TOML."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import RunningServer, start_server, stop_server


def loupe_cli(*args: str, db: str) -> str:
    """The last line `loupe ARGS --db DB` prints (a new key's secret, for `keys create`)."""
    done = subprocess.run([sys.executable, "-m", "loupe", *args, "--db", db], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def keyed_server(root: Path, toml: str) -> Iterator[tuple[RunningServer, str, str]]:
    """The server, its database URL and an admin key's secret; `toml` is the config after `db`."""
    db = f"sqlite:///{root / 'loupe.db'}"
    config = root / "loupe.toml"
    config.write_text(f'db = "{db}"\n{toml}')
    admin = loupe_cli("keys", "create", "--name", "admin", "--admin", db=db)
    server = start_server(["--config", str(config)], root / "server.log")
    try:
        yield server, db, admin
    finally:
        stop_server(server)
