"""A vLLM started with `--api-key` behind a real `loupe serve`: the key, read from the environment
variable the config names, goes with every request (chat and the health checks that learn the
context); a model configured without it fails with Loupe's code and tells the operator why."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from bench.upstream_vllm import VllmServer
from tests.conftest import RunningServer, stop_server
from tests.engines.upstream.conftest import VLLM_MAX_MODEL_LEN, VllmServers
from tests.engines.upstream.upstream_support import keyed_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

KEY = "sk-vllm-test-0123456789"


@pytest.fixture(scope="module")
def locked(vllm: VllmServers) -> Iterator[VllmServer]:
    server = vllm.new("qwen2-vl", api_key=KEY)  # beside the shared one, which the next modules use again
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    locked: VllmServer, vllm_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("vllm-auth")
    server = keyed_gateway(folder, locked.api, locked.name, vllm_checkpoint("qwen2-vl"), KEY)
    yield server
    stop_server(server)


def test_vllm_refuses_requests_without_its_key(locked: VllmServer) -> None:
    assert httpx.get(f"{locked.api}/models", timeout=10).status_code == 401


def test_the_key_goes_with_chat_and_health_checks(gateway: RunningServer) -> None:
    cards = {m["id"]: m for m in httpx.get(f"{gateway.api}/models", timeout=10).json()["data"]}
    assert cards["gw"]["context_size"] == VLLM_MAX_MODEL_LEN  # learned from vLLM's own /v1/models
    assert cards["gw-nokey"]["context_size"] != VLLM_MAX_MODEL_LEN  # its health checks were refused
    with openai.OpenAI(base_url=gateway.api, api_key="unused", max_retries=0, timeout=120) as client:
        reply = client.chat.completions.create(model="gw", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
        streamed = client.chat.completions.create(
            model="gw", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        usage = [chunk.usage for chunk in streamed if chunk.usage is not None]
    assert reply.usage is not None and reply.usage.completion_tokens == 4
    assert len(usage) == 1 and usage[0].completion_tokens == 4


def test_a_model_without_the_key_fails_with_loupes_code_and_the_log_says_why(gateway: RunningServer) -> None:
    with openai.OpenAI(base_url=gateway.api, api_key="unused", max_retries=0, timeout=120) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gw-nokey", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "UPSTREAM_ERROR"
    assert "credentials" in body["message"] and KEY not in str(body)
    log = gateway.log()
    assert "the upstream refused Loupe's credentials (HTTP 401)" in log
    assert KEY not in log
