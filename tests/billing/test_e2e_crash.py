"""`kill -9` of a real `loupe serve` under streaming load: no charge lost, none twice, and the
reservations of the requests it had in flight released by the next process to look."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server, stop_server

from .e2e_support import key_id, ledger, loupe, query
from .servers import PostgresServer

pytestmark = pytest.mark.e2e

BALANCE = Decimal("1")  # far more than the load's holds, so nothing is refused for money


def priced_config(path: Path, checkpoint: Path) -> Path:
    """One model with prices, and heartbeats often enough that a test need not wait long."""
    path.write_text(
        f"""
[[models]]
id = "vision"
checkpoint = "{checkpoint}"
input_price_per_m = "100"
output_price_per_m = "200"

[billing]
heartbeat_s = 0.5
dead_after_s = 30
"""
    )
    return path


def stream_and_kill(server: RunningServer, secret: str, requests: int = 24) -> dict[str, bool]:
    """Stream requests from 12 clients and SIGKILL the server once 3 have finished.

    Returns request id -> whether its stream ended with [DONE].
    """
    finished = threading.Semaphore(0)

    def one(i: int) -> tuple[str | None, bool]:
        body = {"model": "vision", "messages": [{"role": "user", "content": f"#{i}"}], "max_tokens": 40 + i, "stream": True}
        request_id, done = None, False
        try:
            with httpx.stream(
                "POST", f"{server.api}/chat/completions", json=body,
                headers={"authorization": f"Bearer {secret}"}, timeout=120,
            ) as response:
                for line in response.iter_lines():
                    if line.startswith("data: {") and request_id is None:
                        request_id = line.split('"id":"')[1].split('"')[0]
                    done = done or line == "data: [DONE]"
        except httpx.TransportError:
            pass
        if done:
            finished.release()
        return request_id, done

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(one, i) for i in range(requests)]
        for _ in range(3):  # a few streams complete; the rest are still in flight when it dies
            assert finished.acquire(timeout=300), "no stream finished; the server is stuck"
        os.kill(server.process.pid, signal.SIGKILL)
        results = [f.result() for f in futures]
    server.process.wait()
    streams = {rid: done for rid, done in results if rid is not None}
    assert any(streams.values()) and not all(streams.values()), "the kill must land mid-load"
    return streams


def held(db: str) -> list[Any]:
    return query(db, "select request_id, key_id, amount from reservations")


def assert_whole_again(db: str, secret: str, streams: dict[str, bool]) -> None:
    """Nothing held; every completed stream charged once; the balance is what was charged less."""
    key = key_id(secret, db)
    assert held(db) == []
    rows = [row for row in ledger(db) if row["key_id"] == key]
    assert len(rows) == len({row["request_id"] for row in rows})
    charged = {row["request_id"]: row for row in rows if row["charged"]}
    assert {rid for rid, done in streams.items() if done} <= {rid for rid, row in charged.items() if row["status"] == 200}
    (stored,) = query(db, f"select balance, reserved from api_keys where id = '{key}'")
    assert stored["reserved"] == 0
    assert stored["balance"] == int(BALANCE * 10**9) - sum(row["cost"] for row in charged.values())


def wait_until_released(db: str, deadline_s: float = 120) -> None:
    """Wait for a live process to notice the death: it looks every heartbeat (0.5 s here)."""
    give_up = time.monotonic() + deadline_s
    while held(db) and time.monotonic() < give_up:
        time.sleep(0.2)


def ask(server: RunningServer, secret: str) -> int:
    body = {"model": "vision", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    headers = {"authorization": f"Bearer {secret}"}
    return httpx.post(f"{server.api}/chat/completions", json=body, headers=headers, timeout=120).status_code


def test_a_restart_releases_what_the_killed_server_held(tmp_path: Path, tiny_checkpoint: Callable[[str], Path]) -> None:
    db = f"sqlite:///{tmp_path / 'crash.db'}"
    secret = loupe("keys", "create", "--name", "crash", "--balance", str(BALANCE), db=db)
    config = priced_config(tmp_path / "loupe.toml", tiny_checkpoint("qwen2-vl"))
    args = ["--config", str(config), "--db", db]
    streams = stream_and_kill(start_server(args, tmp_path / "first.log"), secret)
    assert held(db), "the killed server must have had reservations in flight"
    restarted = start_server(args, tmp_path / "second.log")  # healthy only after its start-up sweep
    try:
        assert_whole_again(db, secret, streams)
        assert ask(restarted, secret) == 200
        assert "uncharged" in restarted.log()
    finally:
        stop_server(restarted)
    assert query(db, "select id from processes") == []  # a clean stop leaves the registry


def test_a_live_server_releases_what_a_killed_one_held(
    tmp_path: Path, tiny_checkpoint: Callable[[str], Path], postgres_server: PostgresServer
) -> None:
    db = postgres_server.url("loupe_crash")
    subprocess.run(
        ["psql", postgres_server.conninfo(), "-c", "create database loupe_crash"], check=True, capture_output=True
    )
    secret = loupe("keys", "create", "--name", "crash", "--balance", str(BALANCE), db=db)
    config = priced_config(tmp_path / "loupe.toml", tiny_checkpoint("qwen2-vl"))
    args = ["--config", str(config), "--db", db]
    survivor = start_server(args, tmp_path / "survivor.log")
    try:
        streams = stream_and_kill(start_server(args, tmp_path / "doomed.log"), secret)
        wait_until_released(db)
        assert_whole_again(db, secret, streams)
        assert ask(survivor, secret) == 200
        assert len(query(db, "select id from processes")) == 1
    finally:
        stop_server(survivor)
