"""Keys, balances, the ledger and rate limits through a real `loupe serve` and the openai client."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import RunningServer, start_server, stop_server
from tests.helpers import PHOTOS, data_url, image_part

from .e2e_support import key_id, ledger, loupe, query
from .servers import PostgresServer

pytestmark = pytest.mark.e2e

PRICE_IN, PRICE_OUT = Decimal("100"), Decimal("200")  # per million tokens: big enough to matter


@pytest.fixture(scope="module")
def billed(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]
) -> Iterator[tuple[RunningServer, str, Path]]:
    """A server with prices, a per-model rpm limit on a second model id, and an admin key."""
    root = tmp_path_factory.mktemp("billed")
    db = f"sqlite:///{root / 'loupe.db'}"
    config = root / "loupe.toml"
    checkpoint = tiny_checkpoint("qwen2-vl")
    config.write_text(
        f"""
db = "{db}"
[[models]]
id = "vision"
checkpoint = "{checkpoint}"
input_price_per_m = "{PRICE_IN}"
output_price_per_m = "{PRICE_OUT}"

[[models]]
id = "limited"
checkpoint = "{checkpoint}"
rpm = 2
"""
    )
    loupe("keys", "create", "--name", "admin", "--admin", db=db)
    server = start_server(["--config", str(config)], root / "server.log")
    yield server, db, config
    stop_server(server)


def client(server: RunningServer, secret: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key=secret or "", max_retries=0, timeout=120)


def ask(server: RunningServer, secret: str | None, model: str = "vision", **extra: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, **extra}
    return httpx.post(f"{server.api}/chat/completions", json=body, headers=headers, timeout=120)


def test_auth_matrix(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    good = loupe("keys", "create", "--name", "good", "--models", "vision", db=db)
    revoked = loupe("keys", "create", "--name", "gone", db=db)
    loupe("keys", "revoke", key_id(revoked, db), db=db)

    def code(response: httpx.Response) -> tuple[int, str]:
        return response.status_code, response.json()["error"]["code"]

    assert code(ask(server, None)) == (401, "INVALID_API_KEY")
    assert code(ask(server, "lp-not-a-real-key")) == (401, "FAILED_TO_AUTH")
    assert code(ask(server, revoked)) == (401, "FAILED_TO_AUTH")
    assert code(ask(server, good, model="limited")) == (403, "ACCESS_DENY")
    assert ask(server, good).status_code == 200
    assert [m.id for m in client(server, good).models.list().data] == ["vision"]
    admin_only = httpx.get(f"{server.base_url}/admin/usage", headers={"authorization": f"Bearer {good}"})
    assert admin_only.status_code == 403 and admin_only.json()["error"]["code"] == "ACCESS_DENY"
    with pytest.raises(openai.AuthenticationError):
        client(server, "lp-wrong").chat.completions.create(
            model="vision", messages=[{"role": "user", "content": "x"}], max_tokens=1
        )


def test_usage_is_charged_and_reported_per_key(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    mine = loupe("keys", "create", "--name", "mine", "--balance", "10", db=db)
    other = loupe("keys", "create", "--name", "other", "--balance", "10", db=db)
    reply = client(server, mine).chat.completions.create(
        model="vision",
        messages=[{"role": "user", "content": [image_part(data_url(PHOTOS / "bus.jpg")), {"type": "text", "text": "?"}]}],
        max_tokens=3,
    )
    usage = reply.usage
    expected = (usage.prompt_tokens * PRICE_IN + usage.completion_tokens * PRICE_OUT) / 1_000_000
    own = httpx.get(f"{server.api}/usage", headers={"authorization": f"Bearer {mine}"}, params={"group_by": "model"})
    report = own.json()
    assert report["object"] == "usage" and report["requests"] == 1
    assert report["image_tokens"] == usage.prompt_tokens_details.image_tokens
    assert report["prompt_tokens"] == usage.prompt_tokens and Decimal(report["cost"]) == expected
    assert report["data"][0]["group"] == "vision"
    theirs = httpx.get(f"{server.api}/usage", headers={"authorization": f"Bearer {other}"}).json()
    assert theirs["requests"] == 0
    keys = httpx.get(f"{server.base_url}/admin/keys", headers={"authorization": f"Bearer {admin_secret(db)}"})
    assert keys.status_code == 200
    listed = {k["name"]: k for k in keys.json()["data"]}
    assert Decimal(listed["mine"]["balance"]) == Decimal(10) - expected
    assert "secret" not in listed["mine"] and "secret_hash" not in listed["mine"]


def admin_secret(db: str) -> str:
    return loupe("keys", "create", "--name", "another-admin", "--admin", db=db)


def test_amounts_beyond_the_column_are_400s_naming_the_field(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    admin = {"authorization": f"Bearer {admin_secret(db)}"}

    def post(path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{server.base_url}/admin{path}", json=body, headers=admin, timeout=30)

    def refused(response: httpx.Response, param: str) -> bool:
        error = response.json()["error"]
        return response.status_code == 400 and error["param"] == param and error["code"] == "INVALID_REQUEST_BODY"

    assert refused(post("/keys", {"name": "huge", "balance": 1e10}), "balance")  # was a 500
    assert refused(post("/keys", {"name": "long", "balance": 12345678.123456789}), "balance")  # digits a float loses
    created = post("/keys", {"name": "edge", "balance": "9223372036"})
    assert created.status_code == 200 and created.json()["balance"] == "9223372036"
    key = created.json()["id"]
    assert refused(post(f"/keys/{key}/top-up", {"amount": 1}), "amount")  # read back 9223372036.999999488
    assert refused(post(f"/keys/{key}/top-up", {"amount": "1e10"}), "amount")
    assert post(f"/keys/{key}/top-up", {"amount": "0.854775807"}).json()["balance"] == "9223372036.854775807"
    assert query(db, f"select balance, typeof(balance) as kind from api_keys where id = '{key}'") == [
        {"balance": 2**63 - 1, "kind": "integer"}
    ]
    for command in (["keys", "create", "--name", "cli", "--balance", "1e10"], ["keys", "top-up", key, "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "loupe", *command, "--db", db], capture_output=True, text=True, timeout=60
        )
        assert done.returncode != 0 and "9223372036.854775807" in done.stderr
    assert query(db, f"select balance from api_keys where id = '{key}'") == [{"balance": 2**63 - 1}]


def test_rate_limit_is_429_with_headers(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    secret = loupe("keys", "create", "--name", "limited", db=db)
    first = ask(server, secret, model="limited")
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert ask(server, secret, model="limited").status_code == 200
    third = ask(server, secret, model="limited")
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(third.headers["retry-after"]) >= 1
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert ask(server, secret, model="vision").status_code == 200  # the limit is per model


def test_fifty_concurrent_requests_never_overdraw(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    body = {"model": "vision", "messages": [{"role": "user", "content": "Count."}], "max_tokens": 8}
    probe = httpx.post(f"{server.api}/estimate", json=body, headers={"authorization": f"Bearer {admin_secret(db)}"})
    most = Decimal(probe.json()["cost"]["with_max_completion"])
    balance = most * 10 + most / 2  # about ten requests' worth
    secret = loupe("keys", "create", "--name", "tight", "--balance", f"{balance:f}", db=db)
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda _: ask(server, secret, max_tokens=8, messages=body["messages"]), range(50)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(ok) == 10
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {(403, "NOT_ENOUGH_BALANCE")}
    rows = [row for row in ledger(db) if row["key_id"] == key_id(secret, db)]
    charged = [row for row in rows if row["charged"]]
    assert len(charged) == 10
    assert {row["request_id"] for row in charged} == {r.json()["id"] for r in ok}
    spent = sum(Decimal(row["cost"]) for row in charged) / 10**9
    assert spent <= balance


def test_a_dropped_stream_is_charged_499_for_what_was_generated(billed: tuple[RunningServer, str, Path]) -> None:
    server, db, _ = billed
    secret = loupe("keys", "create", "--name", "dropper", db=db)
    stream = client(server, secret).chat.completions.create(
        model="vision", messages=[{"role": "user", "content": "Go on."}], max_tokens=2000, stream=True
    )
    request_id = None
    for i, chunk in enumerate(stream):
        request_id = chunk.id
        if i == 4:
            break
    stream.close()
    row = wait_for_row(db, request_id)
    assert row["status"] == 499 and row["charged"]
    assert 4 <= row["completion_tokens"] < 2000
    assert row["cost"] > 0


def wait_for_row(db: str, request_id: str | None, attempts: int = 100) -> Any:
    import time

    for _ in range(attempts):
        rows = [r for r in ledger(db) if r["request_id"] == request_id]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no ledger row for {request_id}")


def test_two_processes_share_postgresql_and_redis_limits(
    tmp_path: Path, tiny_checkpoint: Callable[[str], Path], postgres_server: PostgresServer, redis_url: str
) -> None:
    db = postgres_server.url("loupe_shared")
    subprocess.run(
        ["psql", postgres_server.conninfo(), "-c", "create database loupe_shared"], check=True, capture_output=True
    )
    secret = loupe("keys", "create", "--name", "shared", "--rpm", "4", "--balance", "100", db=db)
    args = ["--model", str(tiny_checkpoint("qwen2-vl")), "--db", db, "--redis", redis_url]
    first = start_server(args, tmp_path / "a.log")
    second = start_server(args, tmp_path / "b.log")
    try:
        model = httpx.get(f"{first.api}/models", headers={"authorization": f"Bearer {secret}"}).json()["data"][0]["id"]
        statuses = [ask(server, secret, model=model).status_code for server in (first, second) * 3]
        assert statuses.count(200) == 4 and statuses.count(429) == 2
        charged = [row for row in ledger(db) if row["charged"]]
        assert len(charged) == 4
    finally:
        stop_server(first)
        stop_server(second)
