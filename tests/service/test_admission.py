"""Admission without `max_tokens`: a key that can pay for the question is served, capped at what it can pay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from loupe.billing import cost_nanos, from_nanos, prices_of
from tests.conftest import RunningServer, start_server, stop_server

pytestmark = pytest.mark.e2e

PRICES = prices_of("1", "1000")  # per million tokens: a completion token costs 0.001
QUESTION = {"model": "priced", "messages": [{"role": "user", "content": "Describe a quiet harbour."}]}


def loupe(*args: str, db: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "loupe", *args, "--db", db], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[tuple[RunningServer, str]]:
    root = tmp_path_factory.mktemp("admission")
    db = f"sqlite:///{root / 'loupe.db'}"
    config = root / "loupe.toml"
    config.write_text(
        f'db = "{db}"\n[[models]]\nid = "priced"\ncheckpoint = "{tiny_checkpoint("qwen2-vl")}"\n'
        f'input_price_per_m = "{PRICES.input_per_m}"\noutput_price_per_m = "{PRICES.output_per_m}"\n'
    )
    loupe("keys", "create", "--name", "admin", "--admin", db=db)
    server = start_server(["--config", str(config)], root / "server.log")
    yield server, db
    stop_server(server)


def key_of(db: str, secret: str) -> dict[str, Any]:
    keys = json.loads(subprocess.run(
        [sys.executable, "-m", "loupe", "keys", "list", "--json", "--db", db], capture_output=True, text=True, check=True
    ).stdout)
    return next(k for k in keys if secret.startswith(k["secret_hint"]))  # type: ignore[no-any-return]


def key_balance(db: str, secret: str) -> int:
    return int(Decimal(key_of(db, secret)["balance"]).scaleb(9))


def access_line(server: RunningServer, request_id: str) -> dict[str, Any]:
    """The server's access line for a request (written just after the response went out)."""
    for _ in range(100):
        lines = [json.loads(x) for x in server.log().splitlines() if request_id in x and '"path"' in x]
        if lines:
            return lines[-1]  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no access line for {request_id}")


def post(server: RunningServer, path: str, secret: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.api}{path}", json=body, headers={"authorization": f"Bearer {secret}"}, timeout=120)


def balance(server: RunningServer, db: str, affordable_tokens: int, admin: str) -> tuple[str, int]:
    """A key holding exactly the prompt's cost plus `affordable_tokens` completion tokens."""
    prompt = post(server, "/estimate", admin, QUESTION).json()["prompt_tokens"]
    amount = from_nanos(cost_nanos(PRICES, prompt, affordable_tokens))
    return loupe("keys", "create", "--name", "small", "--balance", f"{amount:f}", db=db), prompt


def test_without_max_tokens_the_answer_is_capped_at_what_the_balance_pays(priced: tuple[RunningServer, str]) -> None:
    server, db = priced
    admin = loupe("keys", "create", "--name", "estimator", db=db)
    secret, prompt = balance(server, db, 5, admin)
    whole_context = post(server, "/estimate", admin, QUESTION).json()["cost"]["with_max_completion"]
    assert Decimal(whole_context) > cost_nanos(PRICES, prompt, 5) / Decimal(10**9)  # the old rule refused this key

    answer = post(server, "/chat/completions", secret, {**QUESTION, "temperature": 0})
    assert answer.status_code == 200, answer.text
    usage, choice = answer.json()["usage"], answer.json()["choices"][0]
    assert usage["prompt_tokens"] == prompt and 1 <= usage["completion_tokens"] <= 5
    assert choice["finish_reason"] == "length" or usage["completion_tokens"] < 5
    charged = cost_nanos(PRICES, prompt, usage["completion_tokens"])
    assert key_balance(db, secret) == cost_nanos(PRICES, prompt, 5) - charged >= 0
    line = access_line(server, answer.headers["x-request-id"])
    assert line["key_id"] == key_of(db, secret)["id"] and line["model"] == "priced" and secret not in server.log()


def test_an_explicit_max_tokens_is_still_refused_when_unaffordable(priced: tuple[RunningServer, str]) -> None:
    server, db = priced
    admin = loupe("keys", "create", "--name", "estimator2", db=db)
    secret, _ = balance(server, db, 5, admin)
    refused = post(server, "/chat/completions", secret, {**QUESTION, "max_tokens": 50})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "NOT_ENOUGH_BALANCE"


def test_a_key_that_cannot_pay_one_token_is_refused_for_the_minimum(priced: tuple[RunningServer, str]) -> None:
    server, db = priced
    admin = loupe("keys", "create", "--name", "estimator3", db=db)
    secret, prompt = balance(server, db, 0, admin)
    refused = post(server, "/chat/completions", secret, QUESTION)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "NOT_ENOUGH_BALANCE"
    minimum = from_nanos(cost_nanos(PRICES, prompt, 1))
    assert f"may cost up to {minimum.normalize():f}" in refused.json()["error"]["message"]
