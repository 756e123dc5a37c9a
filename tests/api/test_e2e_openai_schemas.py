"""Every response shape the API produces validates against OpenAI's published schemas (see
`openai_schemas` for the source), and fields that change nothing about the output are accepted."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.api import openai_schemas as schemas
from tests.conftest import RunningServer
from tests.helpers import resized_photo_url, user

pytestmark = pytest.mark.e2e


def _model(server: RunningServer) -> str:
    return str(httpx.get(f"{server.api}/models").json()["data"][0]["id"])


def _post(server: RunningServer, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.api}/chat/completions", json={"model": _model(server), **body}, timeout=60)


def _chunks(server: RunningServer, **body: Any) -> list[dict[str, Any]]:
    payload = {"model": _model(server), "stream": True, **body}
    with httpx.stream("POST", f"{server.api}/chat/completions", json=payload, timeout=60) as response:
        assert response.status_code == 200, response.read()
        lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


ASK = [user("Describe it.", resized_photo_url("bus.jpg", 64, 64))]


def test_a_completion_validates_and_has_refusal_null_and_a_fingerprint(qwen_server: RunningServer) -> None:
    response = _post(qwen_server, messages=ASK, max_tokens=4, n=2, temperature=0.7)
    assert response.status_code == 200
    body = response.json()
    jsonschema.validate(body, schemas.CREATE_CHAT_COMPLETION_RESPONSE)
    assert all(c["message"]["refusal"] is None for c in body["choices"])
    assert body["system_fingerprint"].startswith("fp_")
    assert body["service_tier"] == "default"


@pytest.mark.parametrize("include_usage", [False, True])
def test_every_stream_chunk_validates(qwen_server: RunningServer, include_usage: bool) -> None:
    chunks = _chunks(qwen_server, messages=ASK, max_tokens=4, stream_options={"include_usage": include_usage})
    for chunk in chunks:
        jsonschema.validate(chunk, schemas.CREATE_CHAT_COMPLETION_STREAM_RESPONSE)
    fingerprints = {c["system_fingerprint"] for c in chunks}
    assert len(fingerprints) == 1 and fingerprints.pop().startswith("fp_")
    assert ("usage" in chunks[0]) is include_usage


def test_the_fingerprint_is_the_models_across_requests(qwen_server: RunningServer) -> None:
    first = _post(qwen_server, messages=ASK, max_tokens=1).json()["system_fingerprint"]
    second = _chunks(qwen_server, messages=ASK, max_tokens=1)[0]["system_fingerprint"]
    assert first == second


def test_errors_validate(qwen_server: RunningServer) -> None:
    for response in (
        _post(qwen_server, messages=[]),
        _post(qwen_server, messages=ASK, store=True),
        httpx.post(f"{qwen_server.api}/chat/completions", content=b"{", timeout=10),
        httpx.get(f"{qwen_server.api}/models/no-such-model", timeout=10),
    ):
        assert response.status_code in (400, 404)
        jsonschema.validate(response.json(), schemas.ERROR_RESPONSE)


def test_models_validate(qwen_server: RunningServer) -> None:
    listed = httpx.get(f"{qwen_server.api}/models").json()
    jsonschema.validate(listed, schemas.LIST_MODELS_RESPONSE)
    one = httpx.get(f"{qwen_server.api}/models/{listed['data'][0]['id']}").json()
    jsonschema.validate(one, schemas.MODEL)


NO_OP_FIELDS: list[dict[str, Any]] = [
    {"metadata": {"project": "invoices", "run": "7"}},
    {"user": "user-1234"},
    {"safety_identifier": "hashed-user-1234"},
    {"store": False},
    {"service_tier": "auto"},
    {"service_tier": "flex"},
    {"prompt_cache_key": "invoices-v2"},
    {"prompt_cache_retention": "24h"},
    {"parallel_tool_calls": False},
    {"modalities": ["text"]},
]


@pytest.mark.parametrize("extra", NO_OP_FIELDS, ids=[next(iter(e)) + "=" + json.dumps(next(iter(e.values()))) for e in NO_OP_FIELDS])
def test_fields_that_change_nothing_are_accepted(qwen_server: RunningServer, extra: dict[str, Any]) -> None:
    plain = _post(qwen_server, messages=ASK, max_tokens=4, temperature=0).json()
    tagged = _post(qwen_server, messages=ASK, max_tokens=4, temperature=0, **extra)
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["choices"] == plain["choices"]
    assert tagged.json()["service_tier"] == "default"


def test_include_obfuscation_is_accepted_in_a_stream(qwen_server: RunningServer) -> None:
    chunks = _chunks(qwen_server, messages=ASK, max_tokens=2, stream_options={"include_obfuscation": True})
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"store": True}, "store"),
    ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ({"web_search_options": {}}, "web_search_options"),
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"verbosity": "low"}, "verbosity"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata.k"),
    ({"safety_identifier": "x" * 65}, "safety_identifier"),
    ({"service_tier": "gold"}, "service_tier"),
]


@pytest.mark.parametrize(("extra", "param"), REFUSED, ids=[r[1] for r in REFUSED])
def test_fields_that_would_change_the_output_are_refused_by_name(
    qwen_server: RunningServer, extra: dict[str, Any], param: str
) -> None:
    response = _post(qwen_server, messages=ASK, max_tokens=2, **extra)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["code"] == "INVALID_REQUEST_BODY"
