"""A web page of an allowed origin may call the API from a browser; other origins get no CORS grant."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

ALLOWED = "http://localhost:3000"


@pytest.fixture(scope="module")
def server(serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> RunningServer:
    config = tmp_path_factory.mktemp("cors") / "loupe.toml"
    config.write_text(f'cors_origins = ["{ALLOWED}"]\n[[models]]\nid = "m"\ncheckpoint = "{tiny_checkpoint("qwen2-vl")}"\n')
    return serve("--config", str(config))


def test_a_preflight_from_an_allowed_origin_is_granted(server: RunningServer) -> None:
    preflight = httpx.options(
        f"{server.api}/chat/completions",
        headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED
    answer = httpx.post(
        f"{server.api}/chat/completions", headers={"Origin": ALLOWED},
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, timeout=60,
    )
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in answer.headers["access-control-expose-headers"]


def test_another_origin_gets_no_grant(server: RunningServer) -> None:
    preflight = httpx.options(
        f"{server.api}/chat/completions",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
