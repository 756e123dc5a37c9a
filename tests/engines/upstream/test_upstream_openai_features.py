"""Structured outputs, tools, logprobs and logit_bias through a Loupe gateway (engine "upstream")
in front of a Loupe on its embedded engine: forwarded, relayed, billed as the upstream counts,
and the upstream's refusals answered with the 400 Loupe itself gives."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.e2e

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "blue"]}, "n": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["colour", "n"],
    "additionalProperties": False,
}
TOOLS = [{"type": "function", "function": {"name": "paint", "parameters": SCHEMA}}]
ASK = [{"role": "user", "content": "What colour is the bus?"}]


@pytest.fixture(scope="module")
def pair(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[tuple[RunningServer, str], tuple[RunningServer, str]]:
    checkpoint = tiny_checkpoint("qwen2-vl")
    upstream = serve("--model", str(checkpoint))
    upstream_model = httpx.get(f"{upstream.api}/models").json()["data"][0]["id"]
    config = tmp_path_factory.mktemp("gateway-features") / "loupe.toml"
    config.write_text(
        f"""
[[models]]
id = "gw"
engine = "upstream"
upstream = ["{upstream.api}"]
upstream_model = "{upstream_model}"
checkpoint = "{checkpoint}"
"""
    )
    return (upstream, upstream_model), (serve("--config", str(config)), "gw")


def both(pair: Any, **extra: Any) -> list[httpx.Response]:
    return [
        httpx.post(
            f"{server.api}/chat/completions",
            json={"model": model, "messages": ASK, "max_tokens": 40, "temperature": 0, **extra},
            timeout=120,
        )
        for server, model in pair
    ]


def test_json_schema_is_forwarded_and_billed_as_upstream(pair: Any) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "paint", "schema": SCHEMA}}
    direct, gateway = (r.json() for r in both(pair, response_format=fmt, max_tokens=300))
    jsonschema.validate(json.loads(gateway["choices"][0]["message"]["content"]), SCHEMA)
    assert gateway["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert gateway["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]
    assert gateway["usage"]["completion_tokens"] == direct["usage"]["completion_tokens"]


def test_tool_calls_are_relayed_streamed_and_not(pair: Any) -> None:
    direct, gateway = (r.json() for r in both(pair, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, max_tokens=300))
    call = gateway["choices"][0]["message"]["tool_calls"][0]
    assert gateway["choices"][0]["finish_reason"] == "tool_calls"
    assert call["function"] == direct["choices"][0]["message"]["tool_calls"][0]["function"]
    jsonschema.validate(json.loads(call["function"]["arguments"]), SCHEMA)
    assert gateway["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]
    (server, model) = pair[1]
    body = {"model": model, "messages": ASK, "max_tokens": 300, "temperature": 0, "stream": True,
            "tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "paint"}}}
    with httpx.stream("POST", f"{server.api}/chat/completions", json=body, timeout=120) as response:
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    deltas = [d for c in chunks for ch in c["choices"] for d in ch["delta"].get("tool_calls", [])]
    assert [d["function"]["name"] for d in deltas] == ["paint"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_with_calls_and_results_is_forwarded(pair: Any) -> None:
    history = [
        *ASK,
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "paint", "arguments": '{"colour":"red","n":1}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]
    direct, gateway = (
        httpx.post(f"{s.api}/chat/completions", json={"model": m, "messages": history, "tools": TOOLS, "max_tokens": 5, "temperature": 0}, timeout=120).json()
        for s, m in pair
    )
    assert gateway["choices"][0]["message"] == direct["choices"][0]["message"]
    assert gateway["usage"]["prompt_tokens"] == direct["usage"]["prompt_tokens"]


def test_logprobs_and_logit_bias_are_relayed(pair: Any) -> None:
    direct, gateway = (r.json() for r in both(pair, logprobs=True, top_logprobs=2, max_tokens=5, logit_bias={"40": 5}))
    assert gateway["choices"][0]["logprobs"] == direct["choices"][0]["logprobs"]
    assert len(gateway["choices"][0]["logprobs"]["content"]) == gateway["usage"]["completion_tokens"]


def test_an_upstream_refusal_is_the_400_loupe_gives(pair: Any) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "array", "uniqueItems": True}}}
    direct, gateway = both(pair, response_format=fmt)
    assert direct.status_code == gateway.status_code == 400
    assert gateway.json()["error"]["param"] == direct.json()["error"]["param"] == "response_format.json_schema.schema"
    assert gateway.json()["error"]["code"] == direct.json()["error"]["code"]

