"""Tool calls on every family's tiny checkpoint through the official client: a required or named
choice always yields calls whose arguments validate, streamed as OpenAI's tool-call deltas; a
conversation carrying calls and results is accepted; auto lets the model answer in text."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from loupe.testing.tiny import FAMILIES
from tests.api import openai_schemas as schemas
from tests.conftest import RunningServer
from tests.helpers import resized_photo_url, user

pytestmark = pytest.mark.e2e

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Oslo", "Lima"]},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
COUNT = {
    "type": "object",
    "properties": {"object": {"type": "string", "maxLength": 12}, "n": {"type": "integer", "minimum": 0, "maximum": 50}},
    "required": ["object", "n"],
    "additionalProperties": False,
}
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather forecast", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "count_objects", "parameters": COUNT}},
]
PARAMETERS = {"get_weather": WEATHER, "count_objects": COUNT}
ASK: Any = [user("Where was this photo taken, and what is the weather there?", resized_photo_url("bus.jpg", 96, 96))]


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=300)


def _valid(name: str, arguments: str) -> None:
    jsonschema.validate(json.loads(arguments), PARAMETERS[name])


@pytest.mark.parametrize("family", FAMILIES)
def test_required_yields_valid_calls_streamed_and_not(every_family: RunningServer, family: str) -> None:
    client = _client(every_family)
    reply = client.chat.completions.create(
        model=family, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0.9, seed=5, max_tokens=400
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    for call in choice.message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        _valid(call.function.name, call.function.arguments)  # type: ignore[union-attr]
    jsonschema.validate(reply.model_dump(exclude_unset=True), schemas.CREATE_CHAT_COMPLETION_RESPONSE)
    stream = client.chat.completions.create(  # one call: a greedy random model may repeat calls forever
        model=family, messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        temperature=0, max_tokens=400, stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        jsonschema.validate(chunk.model_dump(exclude_unset=True), schemas.CREATE_CHAT_COMPLETION_STREAM_RESPONSE)
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            entry = calls.setdefault(delta.index, {"name": "", "arguments": ""})
            entry["name"] += delta.function.name or ""  # type: ignore[union-attr]
            entry["arguments"] += delta.function.arguments or ""  # type: ignore[union-attr]
        finish = chunk.choices[0].finish_reason if chunk.choices else finish
    assert finish == "tool_calls" and list(calls) == [0]
    for entry in calls.values():
        _valid(entry["name"], entry["arguments"])


def test_a_named_choice_calls_that_function_once(every_family: RunningServer) -> None:
    reply = _client(every_family).chat.completions.create(
        model="qwen2-vl", messages=ASK, tools=TOOLS, n=2, temperature=1.0, seed=2, max_tokens=300,
        tool_choice={"type": "function", "function": {"name": "count_objects"}},
    )
    for choice in reply.choices:
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert [c.function.name for c in calls] == ["count_objects"]  # type: ignore[union-attr]
        _valid("count_objects", calls[0].function.arguments)  # type: ignore[union-attr]


def test_parallel_tool_calls_false_allows_one_call(every_family: RunningServer) -> None:
    for seed in range(3):
        reply = _client(every_family).chat.completions.create(
            model="qwen2-vl", messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
            temperature=1.0, seed=seed, max_tokens=300,
        )
        assert len(reply.choices[0].message.tool_calls or []) == 1


@pytest.mark.parametrize("family", ["qwen2-vl", "qwen2.5-vl", "smolvlm", "gemma3"])
def test_a_conversation_with_calls_and_results_continues(every_family: RunningServer, family: str) -> None:
    client = _client(every_family)
    first = client.chat.completions.create(
        model=family, messages=ASK, tools=TOOLS, tool_choice="required", temperature=0, max_tokens=300
    )
    message = first.choices[0].message
    history: Any = [
        *ASK,
        message.model_dump(exclude_unset=True),
        *({"role": "tool", "tool_call_id": c.id, "content": '{"temperature": 21}'} for c in message.tool_calls or []),
    ]
    follow = client.chat.completions.create(model=family, messages=history, tools=TOOLS, max_tokens=8)
    assert follow.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert follow.usage is not None and follow.usage.prompt_tokens > first.usage.prompt_tokens  # type: ignore[union-attr]


def test_auto_and_none_answer_in_text(every_family: RunningServer) -> None:
    client = _client(every_family)
    for choice in ("auto", "none"):
        reply = client.chat.completions.create(
            model="qwen2-vl", messages=ASK, tools=TOOLS, tool_choice=choice, temperature=0, max_tokens=6  # type: ignore[arg-type]
        )
        assert reply.choices[0].finish_reason in ("stop", "length") and reply.choices[0].message.tool_calls is None


def _post(server: RunningServer, **extra: Any) -> httpx.Response:
    body = {"model": "qwen2-vl", "messages": ASK, "max_tokens": 2, **extra}
    return httpx.post(f"{server.api}/chat/completions", json=body, timeout=60)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
        ({"tools": [*TOOLS, TOOLS[0]]}, "tools"),
        ({"messages": [{"role": "tool", "content": "21"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
        (
            {"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
            "response_format",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "not": {}}}}],
             "tool_choice": "required"},
            "tools",
        ),
    ],
)
def test_bad_tool_requests_are_400_naming_the_field(every_family: RunningServer, extra: dict[str, Any], param: str) -> None:
    response = _post(every_family, **extra)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_the_estimate_counts_the_tools_as_the_completion_does(every_family: RunningServer) -> None:
    body = {"model": "gemma3", "messages": ASK, "tools": TOOLS, "max_tokens": 2}
    estimate = httpx.post(f"{every_family.api}/estimate", json=body, timeout=60).json()
    done = httpx.post(f"{every_family.api}/chat/completions", json=body, timeout=60).json()
    bare = httpx.post(f"{every_family.api}/estimate", json={**body, "tools": None}, timeout=60).json()
    assert estimate["prompt_tokens"] == done["usage"]["prompt_tokens"] > bare["prompt_tokens"]
