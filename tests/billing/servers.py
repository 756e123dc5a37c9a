"""Real PostgreSQL and Redis servers on loopback for the billing tests, started once per session.

PostgreSQL refuses to run as root. When the tests run as root, the cluster is created and run as
the unprivileged `nobody` user through `runuser -u nobody --`: its directory is made with
`tempfile.mkdtemp` directly under the system temp dir (pytest's own tmp tree is mode 0700 and
root's, so `nobody` could not enter it) and chowned to `nobody`. As any other user, the server
simply runs as that user. Either way it listens on 127.0.0.1 at a free port, with its unix socket
in the same temp dir, trusts local connections, and has fsync off (a test database need not
survive a power cut).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

POSTGRES_HINT = "install PostgreSQL server binaries, e.g. `apt-get install postgresql` (initdb, pg_ctl)"
REDIS_HINT = "install Redis, e.g. `apt-get install redis-server`"
_UNPRIVILEGED = "nobody"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    port: int
    user: str = "loupe"

    def url(self, database: str) -> str:
        """A plain postgresql:// URL, as an operator would write it (billing maps the driver)."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"


def postgres_bin() -> Path:
    """The directory holding initdb and pg_ctl: on PATH, or Debian's versioned directory."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise RuntimeError(f"PostgreSQL server binaries not found; {POSTGRES_HINT}")


def _as_server_user(root: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a non-root user, and hands it `root`."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs `runuser` (util-linux) to start PostgreSQL as nobody")
    account = pwd.getpwnam(_UNPRIVILEGED)
    os.chown(root, account.pw_uid, account.pw_gid)
    return [runuser, "-u", _UNPRIVILEGED, "--"]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="loupe-pg-"))
    data, log = root / "data", root / "server.log"
    prefix = _as_server_user(root)
    port = free_port()
    server = PostgresServer(port)
    subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", server.user, "-A", "trust",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        check=True, capture_output=True, cwd=root,
    )
    options = (
        f"-k {root} -h 127.0.0.1 -p {port} -c fsync=off -c full_page_writes=off "
        "-c synchronous_commit=off -c max_connections=200"
    )
    started = subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
        capture_output=True, cwd=root,
    )
    if started.returncode != 0:
        detail = log.read_text(errors="replace") if log.exists() else started.stderr.decode(errors="replace")
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start:\n{detail}")
    try:
        yield server
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, cwd=root,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"redis-server not found; {REDIS_HINT}")
    root = Path(tempfile.mkdtemp(prefix="loupe-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for_redis(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_redis(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with redis.Redis.from_url(url, socket_timeout=1) as client:
                client.ping()
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer within 20s")
