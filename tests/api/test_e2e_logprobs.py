"""logprobs, top_logprobs and logit_bias through a real server and the official client."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.api import openai_schemas as schemas
from tests.conftest import RunningServer
from tests.helpers import resized_photo_url, user

pytestmark = pytest.mark.e2e

ASK: Any = [user("What is in this picture?", resized_photo_url("bus.jpg", 64, 64))]


def _client(server: RunningServer) -> tuple[openai.OpenAI, str]:
    client = openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0)
    return client, client.models.list().data[0].id


def test_logprobs_agree_with_the_greedy_choice_streamed_and_not(qwen_server: RunningServer) -> None:
    client, model = _client(qwen_server)
    reply = client.chat.completions.create(
        model=model, messages=ASK, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None and len(content) == reply.usage.completion_tokens  # type: ignore[union-attr]
    for entry in content:
        assert entry.token == entry.top_logprobs[0].token
        assert entry.logprob == max(t.logprob for t in entry.top_logprobs)
    jsonschema.validate(reply.model_dump(exclude_unset=True), schemas.CREATE_CHAT_COMPLETION_RESPONSE)
    stream = client.chat.completions.create(
        model=model, messages=ASK, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3, stream=True
    )
    streamed = []
    for chunk in stream:
        jsonschema.validate(chunk.model_dump(exclude_unset=True), schemas.CREATE_CHAT_COMPLETION_STREAM_RESPONSE)
        if chunk.choices and chunk.choices[0].logprobs:
            streamed.extend(chunk.choices[0].logprobs.content or [])
    # The second request reuses the first one's prompt states: the same tokens, logprobs to rounding.
    assert [e.token for e in streamed] == [e.token for e in content]
    assert [e.logprob for e in streamed] == pytest.approx([e.logprob for e in content], abs=1e-4)


def test_without_logprobs_they_are_null(qwen_server: RunningServer) -> None:
    client, model = _client(qwen_server)
    reply = client.chat.completions.create(model=model, messages=ASK, max_tokens=2)
    assert reply.choices[0].logprobs is None


def _post(server: RunningServer, **extra: Any) -> httpx.Response:
    model = httpx.get(f"{server.api}/models").json()["data"][0]["id"]
    body = {"model": model, "messages": ASK, "max_tokens": 2, **extra}
    return httpx.post(f"{server.api}/chat/completions", json=body, timeout=60)


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logit_bias": {"1000000000": 5}}, "logit_bias.1000000000"),
        ({"logit_bias": {"cat": 5}}, "logit_bias.cat"),
        ({"logit_bias": {"5": 101}}, "logit_bias.5"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ],
)
def test_bad_logprob_and_bias_fields_are_400_naming_them(qwen_server: RunningServer, extra: dict[str, Any], param: str) -> None:
    response = _post(qwen_server, **extra)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_a_bias_on_a_known_token_is_accepted(qwen_server: RunningServer) -> None:
    assert _post(qwen_server, logit_bias={"5": -100, "17": 3.5}).status_code == 200
