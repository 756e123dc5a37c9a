"""End to end for Llama 4, Mistral 3 and Qwen3-VL MoE: a real `loupe serve` on each tiny
checkpoint, the official openai client, a shared photo at every detail: usage as documented
(docs/image-tokens.md), equal to the estimate, streamed or not, and the caches on a next turn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, data_url, image_part
from tests.test_e2e_chat import client_for

pytestmark = pytest.mark.e2e

# boats.jpg (1920 x 1080) at no detail, low, high and auto, with the default budget of 1,024.
BOATS = {
    "llama4": {None: 2322, "low": 147, "high": 2322, "auto": 1017},
    "mistral3": {None: 1736, "low": 153, "high": 1736, "auto": 1008},
    "qwen3-vl-moe": {None: 2040, "low": 256, "high": 2040, "auto": 1008},
}
# What /v1/models shows for a 1024 x 1024 image: low, high, auto.
CARD_1024 = {"llama4": (147, 2467, 727), "mistral3": (272, 1406, 992), "qwen3-vl-moe": (256, 1024, 1024)}
BOATS_URL = data_url(PHOTOS / "boats.jpg")


@pytest.fixture(scope="module", params=sorted(BOATS))
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(family: str, serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path]) -> RunningServer:
    return serve("--model", str(tiny_checkpoint(family)))


@pytest.fixture(scope="module")
def client(server: RunningServer) -> openai.OpenAI:
    return client_for(server)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def boats(detail: str | None, text: str = "Describe the boats.") -> list[dict[str, object]]:
    return [{"role": "user", "content": [image_part(BOATS_URL, detail), {"type": "text", "text": text}]}]


@pytest.mark.parametrize("detail", [None, "low", "high", "auto"])
def test_each_detail_costs_what_the_docs_say_and_the_estimate_said(
    family: str, server: RunningServer, client: openai.OpenAI, model: str, detail: str | None
) -> None:
    messages = boats(detail)
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0)  # type: ignore[arg-type]
    assert reply.choices[0].finish_reason in ("length", "stop")
    usage = reply.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.image_tokens == BOATS[family][detail]  # type: ignore[attr-defined]
    estimate = httpx.post(f"{server.api}/estimate", json={"model": model, "messages": messages}, timeout=60)
    assert estimate.status_code == 200, estimate.text
    assert estimate.json()["prompt_tokens"] == usage.prompt_tokens
    assert estimate.json()["image_tokens"] == BOATS[family][detail]


def test_streamed_usage_equals_the_plain_one(client: openai.OpenAI, model: str) -> None:
    messages = boats("auto", "What colour is the water?")
    plain = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=0)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=5,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    streamed = chunks[-1].usage
    assert streamed is not None and plain.usage is not None
    assert (streamed.prompt_tokens, streamed.completion_tokens) == (
        plain.usage.prompt_tokens,
        plain.usage.completion_tokens,
    )


def test_a_next_turn_reuses_the_first_turns_states(family: str, client: openai.OpenAI, model: str) -> None:
    first_turn = boats("low", "Count the boats, please.")
    first = client.chat.completions.create(model=model, messages=first_turn, max_tokens=4, temperature=0)  # type: ignore[arg-type]
    answer = first.choices[0].message.content or ""
    turn2 = [*first_turn, {"role": "assistant", "content": answer}, {"role": "user", "content": "And the sky?"}]
    second = client.chat.completions.create(model=model, messages=turn2, max_tokens=4, temperature=0)  # type: ignore[arg-type]
    assert first.usage is not None and second.usage is not None
    details = second.usage.prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    assert details.cached_tokens >= BOATS[family]["low"]  # the image's states were reused
    assert details.image_tokens == BOATS[family]["low"]  # type: ignore[attr-defined]


def test_models_show_the_documented_detail_rules(family: str, client: openai.OpenAI) -> None:
    (listed,) = client.models.list().data
    rules = {rule["detail"]: rule["tokens"] for rule in (listed.model_extra or {})["detail_rules"]}
    assert (rules["low"], rules["high"], rules["auto"]) == CARD_1024[family]
    assert (listed.model_extra or {})["family"] == ("qwen3-vl" if family == "qwen3-vl-moe" else family)
