"""End to end: a real `loupe serve` with tiny checkpoints, driven by the official openai client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, photo_url, resized_photo_url, user

pytestmark = pytest.mark.e2e


def client_for(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module", params=["qwen2-vl", "smolvlm"])
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


def expected_counts(checkpoint: Path, messages: list[dict[str, Any]]) -> tuple[int, int]:
    """Input length and image-token count as the family's own processor produces them."""
    from loupe.engines.local.processor import load_processor

    processor = load_processor(str(checkpoint))
    conversation = []
    images = []
    for m in messages:
        parts = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        content = []
        for p in parts:
            if p["type"] == "text":
                content.append({"type": "text", "text": p["text"]})
            else:
                content.append({"type": "image"})
                images.append(p["image"])
        conversation.append({"role": m["role"], "content": content})
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    out = processor(text=[text], images=[images] if images else None)
    ids = out["input_ids"][0]
    marker_ids = {processor.tokenizer.convert_tokens_to_ids(processor.image_token)}
    return len(ids), sum(1 for i in ids if i in marker_ids)


def test_text_only(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say hello."}], max_tokens=8, temperature=0
    )
    assert reply.object == "chat.completion"
    assert reply.model == model
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage.prompt_tokens_details.image_tokens == 0
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_one_image_usage_matches_the_processor(
    client: openai.OpenAI, model: str, family: str, tiny_checkpoint: Callable[[str], Path]
) -> None:
    with Image.open(PHOTOS / "extreme_ironing.jpg") as img:
        photo = img.convert("RGB")
    reply = client.chat.completions.create(
        model=model,
        messages=[user("What is in this image?", photo_url("extreme_ironing.jpg"))],
        max_tokens=4,
        temperature=0,
    )
    length, markers = expected_counts(
        tiny_checkpoint(family),
        [{"role": "user", "content": [{"type": "image", "image": photo}, {"type": "text", "text": "What is in this image?"}]}],
    )
    assert reply.usage.prompt_tokens == length
    image_tokens = reply.usage.prompt_tokens_details.image_tokens
    assert image_tokens >= markers > 0  # wrappers and tile markers count as image tokens too
    if family == "qwen2-vl":
        assert image_tokens == markers


def test_qwen_1024x768_is_999_image_tokens(qwen_server: RunningServer) -> None:
    client = client_for(qwen_server)
    model = client.models.list().data[0].id
    reply = client.chat.completions.create(
        model=model,
        messages=[user("Describe.", resized_photo_url("boats.jpg", 1024, 768))],
        max_tokens=1,
    )
    assert reply.usage.prompt_tokens_details.image_tokens == 999
    assert reply.usage.prompt_tokens_details.text_tokens == reply.usage.prompt_tokens - 999


def test_two_images_cost_more_than_one(client: openai.OpenAI, model: str) -> None:
    one = client.chat.completions.create(
        model=model, messages=[user("Compare.", photo_url("bus.jpg"))], max_tokens=1
    )
    two = client.chat.completions.create(
        model=model, messages=[user("Compare.", photo_url("bus.jpg"), photo_url("zidane.jpg"))], max_tokens=1
    )
    single = one.usage.prompt_tokens_details.image_tokens
    assert two.usage.prompt_tokens_details.image_tokens > single > 0
    assert two.usage.prompt_tokens > one.usage.prompt_tokens


def test_multi_turn_with_an_image_in_history(client: openai.OpenAI, model: str) -> None:
    first = [user("What is this?", photo_url("waterview.jpg"))]
    turn1 = client.chat.completions.create(model=model, messages=first, max_tokens=4, temperature=0)
    history = [
        *first,
        {"role": "assistant", "content": turn1.choices[0].message.content or "a lake"},
        {"role": "user", "content": "And what colour is the sky?"},
    ]
    turn2 = client.chat.completions.create(model=model, messages=history, max_tokens=4, temperature=0)
    assert turn2.usage.prompt_tokens_details.image_tokens == turn1.usage.prompt_tokens_details.image_tokens
    assert turn2.usage.prompt_tokens > turn1.usage.prompt_tokens


def test_streaming_with_usage(client: openai.OpenAI, model: str) -> None:
    messages = [user("Describe it.", photo_url("zidane.jpg"))]
    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        max_tokens=6,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1 and usage_chunks[0] is chunks[-1] and chunks[-1].choices == []
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    whole = client.chat.completions.create(model=model, messages=messages, max_tokens=6, temperature=0)
    assert text == whole.choices[0].message.content
    assert usage_chunks[0].usage.prompt_tokens == whole.usage.prompt_tokens
    assert usage_chunks[0].usage.completion_tokens == whole.usage.completion_tokens


def test_n_two_choices(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Count."}], max_tokens=5, n=2, seed=7
    )
    assert [c.index for c in reply.choices] == [0, 1]
    assert 2 <= reply.usage.completion_tokens <= 10
    assert reply.choices[0].message.content != reply.choices[1].message.content


def test_same_seed_same_output(client: openai.OpenAI, model: str) -> None:
    def ask(seed: int) -> str:
        reply = client.chat.completions.create(
            model=model,
            messages=[user("Tell me a story.", photo_url("bus.jpg"))],
            max_tokens=12,
            temperature=1.0,
            seed=seed,
        )
        return reply.choices[0].message.content or ""

    first = ask(1234)
    assert ask(1234) == first
    assert any(ask(s) != first for s in (1, 2, 3))


def test_stop_string_cuts_the_answer(client: openai.OpenAI, model: str) -> None:
    messages = [{"role": "user", "content": "Write something."}]
    base = client.chat.completions.create(model=model, messages=messages, max_tokens=24, temperature=1.0, seed=5)
    text = base.choices[0].message.content or ""
    assert len(text) >= 6, text
    stop = text[3:5]
    cut = client.chat.completions.create(
        model=model, messages=messages, max_tokens=24, temperature=1.0, seed=5, stop=[stop, "never-there"]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.usage.completion_tokens < base.usage.completion_tokens


def test_models_list_and_retrieve(client: openai.OpenAI, model: str) -> None:
    listed = client.models.list().data
    assert [m.id for m in listed] == [model]
    one = client.models.retrieve(model)
    assert one.id == model and one.object == "model"
    assert one.model_extra["capabilities"]["vision"] is True
    assert one.model_extra["context_size"] > 0


def test_client_disconnect_stops_generation(qwen_server: RunningServer) -> None:
    import time

    import httpx

    client = client_for(qwen_server)
    model = client.models.list().data[0].id
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Talk forever."}],
        max_tokens=30_000,
        temperature=1.0,
        stream=True,
    )
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    # 30,000 tokens would keep the engine busy for minutes; a cancelled one frees it at once.
    deadline = time.monotonic() + 60
    while httpx.get(f"{qwen_server.base_url}/health").json()["queue"][model] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(f"{qwen_server.base_url}/health").json()["queue"][model] == 0
    after = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert after.choices[0].message.content is not None


def test_second_turn_reuses_the_first_and_answers_the_same(
    client: openai.OpenAI, model: str, family: str, serve: Callable[..., RunningServer],
    tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory,
) -> None:
    first = [user("What is this?", photo_url("extreme_ironing.jpg"))]
    turn1 = client.chat.completions.create(model=model, messages=first, max_tokens=5, temperature=0)
    history = [
        *first,
        {"role": "assistant", "content": turn1.choices[0].message.content or ""},
        {"role": "user", "content": "Tell me more."},
    ]
    turn2 = client.chat.completions.create(model=model, messages=history, max_tokens=5, temperature=0)
    cached = turn2.usage.prompt_tokens_details.cached_tokens
    assert turn1.usage.prompt_tokens_details.image_tokens <= cached < turn2.usage.prompt_tokens
    # A cold server (no cache) gives the same answer: the cache is invisible in the output.
    config = tmp_path_factory.mktemp(f"cold-{family}") / "loupe.toml"
    config.write_text(f'[[models]]\nid = "{model}"\ncheckpoint = "{tiny_checkpoint(family)}"\n')
    cold = client_for(serve("--config", str(config)))
    again = cold.chat.completions.create(model=model, messages=history, max_tokens=5, temperature=0)
    assert again.usage.prompt_tokens_details.cached_tokens == 0
    assert again.choices[0].message.content == turn2.choices[0].message.content
