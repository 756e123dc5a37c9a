"""A Loupe gateway configured with engine = "upstream", in front of a Loupe on its embedded engine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, billed, data_url, image_part
from tests.media import support

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def image_host() -> Iterator[support.LocalServer]:
    yield from support.serve(None)


@pytest.fixture(scope="module")
def pair(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunningServer, RunningServer]:
    checkpoint = tiny_checkpoint("qwen2-vl")
    upstream = serve("--model", str(checkpoint))
    upstream_model = httpx.get(f"{upstream.api}/models").json()["data"][0]["id"]
    config = tmp_path_factory.mktemp("gateway") / "loupe.toml"
    config.write_text(
        f"""
[fetch]
allow_media_hosts = ["127.0.0.1"]

[[models]]
id = "gw"
engine = "upstream"
upstream = ["{upstream.api}"]
upstream_model = "{upstream_model}"
checkpoint = "{checkpoint}"
input_price_per_m = "1"
"""
    )
    return upstream, serve("--config", str(config))


def ask(server: RunningServer, model: str, content: Any, **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 6, "temperature": 0, **extra}
    response = httpx.post(f"{server.api}/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("detail", [None, "low", "auto"])
def test_gateway_equals_the_direct_call(pair: tuple[RunningServer, RunningServer], detail: str | None) -> None:
    upstream, gateway = pair
    direct_model = httpx.get(f"{upstream.api}/models").json()["data"][0]["id"]
    content = [image_part(data_url(PHOTOS / "bus.jpg"), detail), {"type": "text", "text": "What is it?"}]
    direct = ask(upstream, direct_model, content)
    through = ask(gateway, "gw", content)
    assert billed(through["usage"]) == billed(direct["usage"])
    assert through["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    estimate = httpx.post(f"{gateway.api}/estimate", json={"model": "gw", "messages": [{"role": "user", "content": content}]})
    assert estimate.json()["prompt_tokens"] == direct["usage"]["prompt_tokens"]


def test_gateway_fetches_urls_itself_and_streams(
    pair: tuple[RunningServer, RunningServer], image_host: support.LocalServer
) -> None:
    upstream, gateway = pair
    content = [image_part(image_host.url("/photo.jpg")), {"type": "text", "text": "Describe."}]
    before = len(image_host.paths)
    with httpx.stream(
        "POST",
        f"{gateway.api}/chat/completions",
        json={
            "model": "gw", "messages": [{"role": "user", "content": content}], "max_tokens": 5, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True},
        },
        timeout=120,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert image_host.paths[before:] == ["/photo.jpg"]  # fetched once, by the gateway; the upstream got pixels
    inline = ask(gateway, "gw", [image_part(data_url(support.PHOTO)), {"type": "text", "text": "Describe."}], max_tokens=5)
    usage = json.loads(lines[-2].removeprefix("data: "))["usage"]
    assert usage["prompt_tokens"] == inline["usage"]["prompt_tokens"]
    assert httpx.get(f"{gateway.api}/models").json()["data"][0]["input_token_price_per_m"] == "1"


def test_gateway_metrics_show_replica_health(pair: tuple[RunningServer, RunningServer]) -> None:
    upstream, gateway = pair
    text = httpx.get(f"{gateway.base_url}/metrics").text
    assert f'loupe_upstream_replica_up{{model="gw",replica="{upstream.api}"}} 1.0' in text
    assert 'loupe_upstream_usage_mismatches{model="gw"} 0.0' in text
