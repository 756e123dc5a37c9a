"""`response_format` json_schema and json_object on every family's tiny checkpoint, through the
official client: constrained decoding makes even random weights answer with JSON that validates."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from loupe.testing.tiny import FAMILIES
from tests.conftest import RunningServer
from tests.helpers import resized_photo_url, user

pytestmark = pytest.mark.e2e

# Every value bounded, so a random model's answer ends well within max_tokens.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vehicle": {"type": "string", "enum": ["bus", "taxi", "boat", "bicycle"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "outdoors": {"type": "boolean"},
        "caption": {"type": "string", "maxLength": 16},
        "colours": {"type": "array", "items": {"type": "string", "enum": ["red", "blue", "yellow"]}, "maxItems": 3},
    },
    "required": ["vehicle", "count", "outdoors", "caption", "colours"],
    "additionalProperties": False,
}
FORMAT: Any = {"type": "json_schema", "json_schema": {"name": "scene", "schema": SCHEMA, "strict": True}}
ASK: Any = [user("Describe the picture as JSON.", resized_photo_url("bus.jpg", 96, 96))]


class Scene(BaseModel):
    vehicle: Literal["bus", "taxi", "boat", "bicycle"]
    count: Annotated[int, Field(ge=0, le=99)]
    outdoors: bool
    caption: Annotated[str, Field(max_length=16)]


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=300)


@pytest.mark.parametrize("family", FAMILIES)
def test_json_schema_output_validates_streamed_and_not(every_family: RunningServer, family: str) -> None:
    client = _client(every_family)
    reply = client.chat.completions.create(
        model=family, messages=ASK, response_format=FORMAT, n=2, temperature=1.0, seed=7, max_tokens=300
    )
    for choice in reply.choices:
        assert choice.finish_reason == "stop"
        jsonschema.validate(json.loads(choice.message.content or ""), SCHEMA)
    stream = client.chat.completions.create(
        model=family, messages=ASK, response_format=FORMAT, temperature=0, max_tokens=300, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)


@pytest.mark.parametrize("family", ["qwen2-vl", "smolvlm", "gemma3"])
def test_parse_with_a_pydantic_model(every_family: RunningServer, family: str) -> None:
    parsed = _client(every_family).chat.completions.parse(
        model=family, messages=ASK, response_format=Scene, temperature=0.8, seed=1, max_tokens=300
    )
    scene = parsed.choices[0].message.parsed
    assert isinstance(scene, Scene)


def test_json_object_is_an_object(every_family: RunningServer) -> None:
    client = _client(every_family)
    reply = client.chat.completions.create(
        model="qwen2-vl", messages=ASK, response_format={"type": "json_object"}, temperature=0, max_tokens=40
    )
    choice = reply.choices[0]
    if choice.finish_reason == "stop":  # an object a random model leaves open is cut by max_tokens
        assert isinstance(json.loads(choice.message.content or ""), dict)
    else:
        assert choice.finish_reason == "length" and (choice.message.content or "").startswith("{")


def test_a_cut_answer_ends_with_length(every_family: RunningServer) -> None:
    reply = _client(every_family).chat.completions.create(
        model="qwen2-vl", messages=ASK, response_format=FORMAT, temperature=0, max_tokens=5, n=2
    )
    for choice in reply.choices:
        assert choice.finish_reason == "length"
        assert (choice.message.content or "").startswith('{"')  # properties come in any order
    assert reply.usage is not None and reply.usage.completion_tokens == 10


def test_n_and_stop_together_with_a_schema(every_family: RunningServer) -> None:
    reply = _client(every_family).chat.completions.create(
        model="qwen2-vl", messages=ASK, response_format=FORMAT, n=3, temperature=1.0, seed=3, stop=['"count"'],
        max_tokens=300,
    )
    assert len(reply.choices) == 3
    for choice in reply.choices:
        assert choice.finish_reason == "stop"
        content = choice.message.content or ""
        assert content.startswith("{") and '"count"' not in content  # a required property: always cut


def _post(server: RunningServer, **extra: Any) -> httpx.Response:
    body = {"model": "qwen2-vl", "messages": ASK, "max_tokens": 2, **extra}
    return httpx.post(f"{server.api}/chat/completions", json=body, timeout=60)


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "object", "not": {"required": ["a"]}}, "not"),
        ({"type": "array", "uniqueItems": True}, "uniqueItems"),
        ({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}, "if"),
    ],
)
def test_a_keyword_the_library_cannot_enforce_is_a_400_naming_it(
    every_family: RunningServer, schema: dict[str, Any], keyword: str
) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    response = _post(every_family, response_format=fmt)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "response_format.json_schema.schema" and keyword in error["message"]


@pytest.mark.parametrize(
    ("fmt", "param"),
    [
        ({"type": "json_schema"}, "response_format.json_schema"),
        ({"type": "xml"}, "response_format.type"),
        ({"type": "json_schema", "json_schema": {"name": "bad name!", "schema": {}}}, "response_format.json_schema.name"),
    ],
)
def test_malformed_response_formats_are_400(every_family: RunningServer, fmt: dict[str, Any], param: str) -> None:
    response = _post(every_family, response_format=fmt)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
