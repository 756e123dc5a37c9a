"""Shared fixtures: the shared image corpus, tiny checkpoints, and a real `loupe serve` on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# No test may reach the network: the hub is offline, and every server listens on loopback.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Loupe's default data directory (its default database) for this session: never the user's."""
    path = tmp_path_factory.mktemp("xdg-data")
    os.environ["XDG_DATA_HOME"] = str(path)
    return path / "loupe"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build (once per session) a tiny random-weight checkpoint of a family and return its path."""
    from loupe.testing.tiny import build_tiny_checkpoint

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp(f"tiny-{family}")
            built[family] = build_tiny_checkpoint(family, out)
        return built[family]

    return get


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def api(self) -> str:
        return f"{self.base_url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None


def start_server(args: list[str], log_path: Path, timeout: float = 120.0, port: int | None = None) -> RunningServer:
    """Start `loupe serve ARGS` on a free loopback port and wait until /health answers.

    Each server has its own data directory beside its log, so a config without `db` gets its
    own default database; without a config or `--db` it is named explicitly.
    """
    port = port or free_port()
    if "--db" not in args and "--config" not in args:
        args = [*args, "--db", f"sqlite:///{log_path.parent / 'loupe.db'}"]
    with log_path.open("wb") as log:  # the child keeps its own handle
        process = subprocess.Popen(
            [sys.executable, "-m", "loupe", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "XDG_DATA_HOME": str(log_path.parent / "data")},
        )
    server = RunningServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"loupe serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(f"loupe serve did not become healthy:\n{server.log()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningServer]]:
    """Start servers by argument list; each distinct list is started once per session."""
    running: dict[tuple[str, ...], RunningServer] = {}

    def get(*args: str) -> RunningServer:
        key = tuple(args)
        if key not in running or not running[key].alive():
            log = tmp_path_factory.mktemp("serve") / "server.log"
            running[key] = start_server(list(args), log)
        return running[key]

    yield get
    for server in running.values():
        stop_server(server)


@pytest.fixture(scope="session")
def qwen_server(serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path]) -> RunningServer:
    return serve("--model", str(tiny_checkpoint("qwen2-vl")))


@pytest.fixture(scope="session")
def smol_server(serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path]) -> RunningServer:
    return serve("--model", str(tiny_checkpoint("smolvlm")))
