"""A front Loupe in front of a Loupe that requires keys (docs/deploy.md, "Another Loupe"): the
front one sends the upstream's key from `api_key_env`; a model configured without it fails with
UPSTREAM_ERROR, and the upstream bills what the front one asked for to that key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from loupe.compose_billing import open_billing
from loupe.settings import load_settings
from tests.conftest import RunningServer, start_server, stop_server
from tests.engines.upstream.upstream_support import keyed_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def keyed(
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, RunningServer, str]]:
    folder = tmp_path_factory.mktemp("keyed-upstream")
    db = f"sqlite:///{folder / 'upstream.db'}"
    secret = open_billing(load_settings(overrides={"db": db})).keys.create("front gateway").secret
    checkpoint = tiny_checkpoint("qwen2-vl")
    upstream = start_server(["--model", str(checkpoint), "--db", db], folder / "upstream.log")
    model = httpx.get(f"{upstream.api}/models", headers={"authorization": f"Bearer {secret}"}).json()["data"][0]["id"]
    front = keyed_gateway(folder, upstream.api, model, checkpoint, secret)
    yield upstream, front, secret
    stop_server(front)
    stop_server(upstream)


def ask(front: RunningServer, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}
    return httpx.post(f"{front.api}/chat/completions", json=body, timeout=120)


def test_the_front_loupe_sends_the_upstream_key(keyed: tuple[RunningServer, RunningServer, str]) -> None:
    upstream, front, secret = keyed
    reply = ask(front, "gw")
    assert reply.status_code == 200, reply.text
    assert reply.json()["usage"]["completion_tokens"] == 3
    usage = httpx.get(f"{upstream.api}/usage", headers={"authorization": f"Bearer {secret}"}).json()
    assert usage["requests"] >= 1 and usage["completion_tokens"] >= 3  # billed upstream to the front's key


def test_without_the_key_the_upstream_refuses_and_the_front_says_why(keyed: tuple[RunningServer, RunningServer, str]) -> None:
    _, front, secret = keyed
    reply = ask(front, "gw-nokey")
    assert reply.status_code == 502
    assert reply.json()["error"]["code"] == "UPSTREAM_ERROR"
    assert "credentials" in reply.json()["error"]["message"]
    assert "refused Loupe's credentials (HTTP 401)" in front.log() and secret not in front.log()
