"""A real `loupe serve` (engine = "upstream") in front of a real vLLM, called with the official client.

The gateway serves the tiny Qwen2-VL twice: `gw` follows what vLLM states (its 4,096-token
`max_model_len`, far below the checkpoint's 32,768), `gw-fixed` has `learn_limits = false`, so
what only vLLM can refuse reaches it, and its refusals come back with Loupe's codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from bench.upstream_vllm import VllmServer
from tests.conftest import RunningServer, start_server, stop_server
from tests.engines.upstream.conftest import VLLM_MAX_IMAGES, VLLM_MAX_MODEL_LEN, VllmServers
from tests.helpers import data_url, image_part, photo_url
from tests.media import support

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def upstream(vllm: VllmServers) -> VllmServer:
    return vllm.get("qwen2-vl")


@pytest.fixture(scope="module")
def gateway(
    upstream: VllmServer, vllm_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    checkpoint = vllm_checkpoint("qwen2-vl")
    config = tmp_path_factory.mktemp("vllm-gateway") / "loupe.toml"
    config.write_text(
        "[fetch]\nallow_media_hosts = [\"127.0.0.1\"]\n"
        + "".join(
            f"""
[[models]]
id = "{model_id}"
engine = "upstream"
upstream = ["{upstream.api}"]
upstream_model = "{upstream.name}"
checkpoint = "{checkpoint}"
[models.images]
max_images = 4
[models.upstream_options]
learn_limits = {learn}
"""
            for model_id, learn in (("gw", "true"), ("gw-fixed", "false"))
        )
    )
    server = start_server(["--config", str(config)], config.parent / "gateway.log")
    yield server
    stop_server(server)


@pytest.fixture
def client(gateway: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.api, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
def direct(upstream: VllmServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.api, api_key="unused", max_retries=0, timeout=120) as c:
        yield c


def user(*parts: dict[str, Any], text: str = "What is in the picture?") -> list[Any]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


def chat_requests(upstream: VllmServer) -> int:
    """Chat requests vLLM has answered over HTTP, refusals included (its /metrics)."""
    text = httpx.get(upstream.api.removesuffix("/v1") + "/metrics", timeout=5).text
    pattern = r'^http_requests_total\{[^}]*handler="/v1/chat/completions"[^}]*\} ([0-9.e+]+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


# Two full-HD photos at detail high: about 5,400 prompt tokens, more than vLLM's 4,096 and far
# less than the checkpoint's 32,768.
TWO_LARGE = user(image_part(photo_url("boats.jpg"), "high"), image_part(photo_url("boats.jpg"), "high"))


def test_models_and_estimates_show_the_upstreams_context(gateway: RunningServer) -> None:
    cards = {m["id"]: m for m in httpx.get(f"{gateway.api}/models").json()["data"]}
    assert cards["gw"]["context_size"] == VLLM_MAX_MODEL_LEN
    assert cards["gw-fixed"]["context_size"] == 32_768
    body = {"model": "gw", "messages": user(image_part(photo_url("bus.jpg"), "low"))}
    estimate = httpx.post(f"{gateway.api}/estimate", json=body).json()
    assert estimate["max_completion_tokens"] == VLLM_MAX_MODEL_LEN - estimate["prompt_tokens"]
    refused = httpx.post(f"{gateway.api}/estimate", json={"model": "gw", "messages": TWO_LARGE})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"


def test_a_prompt_beyond_the_upstreams_context_is_refused_by_loupe(
    client: openai.OpenAI, upstream: VllmServer
) -> None:
    before = chat_requests(upstream)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gw", messages=TWO_LARGE, max_tokens=4)
    assert caught.value.code == "context_length_exceeded"
    assert f"context of {VLLM_MAX_MODEL_LEN} tokens" in caught.value.message
    assert chat_requests(upstream) == before  # nothing was sent


def test_what_only_vllm_refuses_comes_back_with_loupes_codes(client: openai.OpenAI, upstream: VllmServer) -> None:
    before = chat_requests(upstream)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model="gw-fixed", messages=TWO_LARGE, max_tokens=4)
    assert too_long.value.code == "context_length_exceeded"
    photos = [image_part(photo_url("bus.jpg"), "low")] * (VLLM_MAX_IMAGES + 1)  # Loupe takes 4, vLLM 2
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="gw", messages=user(*photos), max_tokens=4)
    assert too_many.value.code == "TOO_MANY_IMAGES"
    assert chat_requests(upstream) == before + 2
    for caught in (too_long, too_many):
        assert "vllm" not in caught.value.message.lower() and "--" not in caught.value.message


def test_streaming_with_usage_equals_the_whole_answer(client: openai.OpenAI) -> None:
    messages = user(image_part(photo_url("zidane.jpg"), "auto"))
    whole = client.chat.completions.create(model="gw", messages=messages, max_tokens=10, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="gw", messages=messages, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and whole.usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.image_tokens == 1008


def test_several_seeded_choices_are_reproducible(client: openai.OpenAI) -> None:
    def ask() -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model="gw", messages=user(image_part(photo_url("bus.jpg"), "low")), max_tokens=8, temperature=1.0, n=2, seed=7
        )

    first, again = ask(), ask()
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]
    assert first.usage is not None and again.usage is not None
    assert 2 <= first.usage.completion_tokens == again.usage.completion_tokens <= 2 * 8


def test_stop_ends_the_answer_where_vllm_would(client: openai.OpenAI) -> None:
    messages = user(image_part(photo_url("bus.jpg"), "low"), text="Describe this image in detail.")
    full = client.chat.completions.create(model="gw", messages=messages, max_tokens=16, temperature=0)
    text = full.choices[0].message.content or ""
    assert len(text) >= 2, f"the tiny model's answer is too short to cut: {text!r}"
    stop = text[len(text) // 2]
    cut = client.chat.completions.create(model="gw", messages=messages, max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_sampling_parameters_reach_vllm(client: openai.OpenAI, direct: openai.OpenAI, upstream: VllmServer) -> None:
    params: dict[str, Any] = {
        "max_tokens": 12,
        "temperature": 0.9,
        "top_p": 0.8,
        "presence_penalty": 0.3,
        "frequency_penalty": 0.2,
        "seed": 11,
        "extra_body": {"top_k": 20, "min_p": 0.05, "repetition_penalty": 1.1},
    }
    messages = [{"role": "user", "content": "Describe a red bus on a busy street."}]
    through = client.chat.completions.create(model="gw", messages=messages, **params)  # type: ignore[arg-type]
    mine = direct.chat.completions.create(model=upstream.name, messages=messages, **params)  # type: ignore[arg-type]
    assert through.choices[0].message.content == mine.choices[0].message.content
    assert through.usage is not None and mine.usage is not None
    assert through.usage.prompt_tokens == mine.usage.prompt_tokens


@pytest.fixture(scope="module")
def image_host() -> Iterator[support.LocalServer]:
    yield from support.serve(None)


def test_image_urls_are_fetched_by_loupe_alone(client: openai.OpenAI, image_host: support.LocalServer) -> None:
    before = len(image_host.paths)
    by_url = client.chat.completions.create(
        model="gw", messages=user(image_part(image_host.url("/photo.jpg"), "low")), max_tokens=4, temperature=0
    )
    assert image_host.paths[before:] == ["/photo.jpg"]  # once, by Loupe: vLLM got the pixels
    inline = client.chat.completions.create(
        model="gw", messages=user(image_part(data_url(support.PHOTO), "low")), max_tokens=4, temperature=0
    )
    assert by_url.usage is not None and inline.usage is not None
    assert by_url.usage.prompt_tokens == inline.usage.prompt_tokens


# Structured outputs and tools. The tiny template renders no tools: Loupe writes its convention
# into the messages it sends (and counts), forces calls with its grammar as vLLM's structured
# output, and parses the calls from vLLM's text, as the embedded engine does.
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"enum": ["Paris", "Rome"]}, "celsius": {"type": "boolean"}},
            "required": ["city", "celsius"],
            "additionalProperties": False,
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}, "additionalProperties": False}},
}
ANSWER = {
    "type": "object",
    "properties": {"animal": {"enum": ["cat", "dog"]}, "count": {"type": "integer", "minimum": 0, "maximum": 9}},
    "required": ["animal", "count"],
    "additionalProperties": False,
}
ASK_WEATHER: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def valid_call(call: Any) -> dict[str, Any]:
    """A call's arguments, checked against its function's parameters."""
    spec = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
    arguments: dict[str, Any] = json.loads(call.function.arguments)
    jsonschema.validate(arguments, spec["function"]["parameters"])
    assert call.id and call.type == "function"
    return arguments


def test_a_json_schema_answer_validates(client: openai.OpenAI) -> None:
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "answer", "schema": ANSWER, "strict": True}}
    messages = user(image_part(photo_url("bus.jpg"), "low"), text="How many animals, and which?")
    whole = client.chat.completions.create(
        model="gw", messages=messages, max_tokens=64, temperature=1.0, seed=3, response_format=response_format
    )
    jsonschema.validate(json.loads(whole.choices[0].message.content or ""), ANSWER)
    assert whole.choices[0].finish_reason == "stop"
    chunks = list(
        client.chat.completions.create(
            model="gw", messages=messages, max_tokens=64, temperature=1.0, seed=3, response_format=response_format,
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == whole.choices[0].message.content
    assert chunks[-1].usage is not None and whole.usage is not None
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_required_tool_choice_yields_a_valid_call(client: openai.OpenAI) -> None:
    # One call: the random model would go on writing parallel ones until max_tokens. The tiny
    # tokenizer spends about 70 tokens on a call.
    answer = client.chat.completions.create(
        model="gw", messages=ASK_WEATHER, tools=[WEATHER, TIME], tool_choice="required",
        parallel_tool_calls=False, max_tokens=160, temperature=1.0, seed=5,
    )  # fmt: skip
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert len(choice.message.tool_calls) == 1 and not choice.message.content
    valid_call(choice.message.tool_calls[0])
    plain = client.chat.completions.create(model="gw", messages=ASK_WEATHER, max_tokens=1)
    assert answer.usage is not None and plain.usage is not None
    assert answer.usage.prompt_tokens > plain.usage.prompt_tokens + 50  # the functions were in the prompt


def test_a_named_tool_choice_calls_that_function_streamed(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gw", messages=ASK_WEATHER, tools=[WEATHER, TIME],
            tool_choice={"type": "function", "function": {"name": "get_weather"}}, parallel_tool_calls=False,
            max_tokens=160, temperature=1.0, seed=9, stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    pieces = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
    assert pieces and {p.index for p in pieces} == {0}
    assert pieces[0].id and pieces[0].function is not None and pieces[0].function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in pieces if p.function is not None)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_auto_tool_choice_and_a_tool_result_pass_through(client: openai.OpenAI) -> None:
    """The model may answer or call; either comes back well formed. A conversation holding a
    call and its result is sent as Loupe counted it (the mismatch counter, last test)."""
    answer = client.chat.completions.create(
        model="gw", messages=ASK_WEATHER, tools=[WEATHER], max_tokens=16, temperature=0
    )
    choice = answer.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert (choice.finish_reason == "tool_calls") == bool(choice.message.tool_calls)
    for call in choice.message.tool_calls or ():
        valid_call(call)
    made = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris", "celsius": true}'}}
    history: Any = [*ASK_WEATHER, {"role": "assistant", "content": None, "tool_calls": [made]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}]  # fmt: skip
    after = client.chat.completions.create(model="gw", messages=history, tools=[WEATHER], max_tokens=8, temperature=0)
    assert after.usage is not None and answer.usage is not None
    assert after.usage.prompt_tokens > answer.usage.prompt_tokens


def test_logprobs_are_vllms(client: openai.OpenAI, direct: openai.OpenAI, upstream: VllmServer) -> None:
    messages: Any = [{"role": "user", "content": "Describe a red bus."}]
    through = client.chat.completions.create(model="gw", messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2)
    mine = direct.chat.completions.create(model=upstream.name, messages=messages, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2)
    assert through.choices[0].logprobs is not None and mine.choices[0].logprobs is not None
    ours, theirs = through.choices[0].logprobs.content or [], mine.choices[0].logprobs.content or []
    assert through.usage is not None and len(ours) == through.usage.completion_tokens
    assert [(t.token, len(t.top_logprobs)) for t in ours] == [(t.token, len(t.top_logprobs)) for t in theirs]
    assert [t.logprob for t in ours] == pytest.approx([t.logprob for t in theirs], abs=1e-3)


def test_no_usage_mismatch_was_counted(gateway: RunningServer) -> None:
    text = httpx.get(f"{gateway.base_url}/metrics").text
    assert 'loupe_upstream_usage_mismatches{model="gw"} 0.0' in text
    assert 'loupe_upstream_replica_up{model="gw",replica=' in text
