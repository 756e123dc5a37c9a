"""Bad requests get a 400 (or 404/413) in OpenAI's envelope with a stable code, and the server keeps serving."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import photo_url

pytestmark = pytest.mark.e2e


def model_of(server: RunningServer) -> str:
    return str(httpx.get(f"{server.api}/models").json()["data"][0]["id"])


def post(server: RunningServer, body: Any, *, raw: bytes | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body).encode()
    return httpx.post(
        f"{server.api}/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
        timeout=60,
    )


def chat(model: str, content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 2, **extra}


def image(url: str) -> list[dict[str, Any]]:
    return [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what?"}]


CASES: list[tuple[str, Any, int, str, str | None]] = [
    # (name, body builder or raw bytes, status, code, param)
    ("malformed json", b'{"model": "x", "messages": [', 400, "INVALID_REQUEST_BODY", None),
    ("not an object", b"[1, 2, 3]", 400, "INVALID_REQUEST_BODY", None),
    ("missing messages", lambda m: {"model": m}, 400, "INVALID_REQUEST_BODY", "messages"),
    ("empty messages", lambda m: {"model": m, "messages": []}, 400, "INVALID_REQUEST_BODY", "messages"),
    ("wrong type", lambda m: chat(m, "hi", temperature="hot"), 400, "INVALID_REQUEST_BODY", "temperature"),
    ("max_tokens zero", lambda m: chat(m, "hi", max_tokens=0), 400, "INVALID_REQUEST_BODY", "max_tokens"),
    ("too many stops", lambda m: chat(m, "hi", stop=["a", "b", "c", "d", "e"]), 400, "INVALID_REQUEST_BODY", "stop"),
    (
        "unknown role",
        lambda m: {"model": m, "messages": [{"role": "wizard", "content": "hi"}]},
        400,
        "INVALID_REQUEST_BODY",
        "messages[0].role",
    ),
    ("unknown model", lambda m: chat("no-such-model", "hi"), 404, "MODEL_NOT_FOUND", "model"),
    ("tool without a function", lambda m: chat(m, "hi", tools=[{"type": "function"}]), 400, "INVALID_REQUEST_BODY", "tools[0].function"),
    ("audio output", lambda m: chat(m, "hi", audio={"voice": "alloy", "format": "wav"}), 400, "INVALID_REQUEST_BODY", "audio"),
    (
        "unknown response format",
        lambda m: chat(m, "hi", response_format={"type": "yaml"}),
        400,
        "INVALID_REQUEST_BODY",
        "response_format.type",
    ),
    ("unknown field", lambda m: chat(m, "hi", frobnicate=1), 400, "INVALID_REQUEST_BODY", "frobnicate"),
    (
        "bad base64",
        lambda m: chat(m, image("data:image/png;base64,@@@not-base64@@@")),
        400,
        "INVALID_IMAGE_FORMAT",
        "messages[0].content[0].image_url",
    ),
    (
        "not an image",
        lambda m: chat(m, image("data:image/png;base64," + base64.b64encode(b"hello, not a picture").decode())),
        400,
        "INVALID_IMAGE_FORMAT",
        "messages[0].content[0].image_url",
    ),
    (
        "unknown detail",
        lambda m: chat(m, [{"type": "image_url", "image_url": {"url": photo_url("bus.jpg"), "detail": "ultra"}}]),
        400,
        "INVALID_REQUEST_BODY",
        "messages[0].content[0].image_url.detail",
    ),
    (
        "image in an assistant message",
        lambda m: {"model": m, "messages": [{"role": "assistant", "content": image(photo_url("bus.jpg"))}]},
        400,
        "INVALID_REQUEST_BODY",
        "messages[0].content[0].image_url",
    ),
    ("unknown part type", lambda m: chat(m, [{"type": "video", "video": "x"}]), 400, "INVALID_REQUEST_BODY", None),
    # Values the engine cannot compute with, refused before it sees them (issue 21).
    ("tiny repetition penalty", lambda m: chat(m, "hi", repetition_penalty=5e-324), 400, "INVALID_REQUEST_BODY", "repetition_penalty"),
    ("seed of 2**64", lambda m: chat(m, "hi", seed=2**64), 400, "INVALID_REQUEST_BODY", "seed"),
    ("seed of 10**30", lambda m: chat(m, "hi", seed=-(10**30)), 400, "INVALID_REQUEST_BODY", "seed"),
    ("huge top_k", lambda m: chat(m, "hi", top_k=2**63), 400, "INVALID_REQUEST_BODY", "top_k"),
    ("NaN temperature", b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400, "INVALID_REQUEST_BODY", "temperature"),
    ("infinite top_p", b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": -Infinity}', 400, "INVALID_REQUEST_BODY", "top_p"),
    ("lone surrogate", lambda m: chat(m, "a\ud800b"), 400, "INVALID_REQUEST_BODY", "messages[0].content"),
    (
        "lone surrogate in a part",
        lambda m: chat(m, [{"type": "text", "text": "ok"}, {"type": "text", "text": "a\udfffb"}]),
        400,
        "INVALID_REQUEST_BODY",
        "messages[0].content[1].text",
    ),
    ("lone surrogate, streaming", lambda m: chat(m, "a\ud800b", stream=True), 400, "INVALID_REQUEST_BODY", "messages[0].content"),
    ("lone surrogate in stop", lambda m: chat(m, "hi", stop=["\ud800"]), 400, "INVALID_REQUEST_BODY", "stop"),
    ("lone surrogate in user", lambda m: chat(m, "hi", user="\udc00"), 400, "INVALID_REQUEST_BODY", "user"),
]


@pytest.mark.parametrize(("name", "build", "status", "code", "param"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_and_the_server_keeps_serving(
    qwen_server: RunningServer, name: str, build: Any, status: int, code: str, param: str | None
) -> None:
    model = model_of(qwen_server)
    response = post(qwen_server, None, raw=build) if isinstance(build, bytes) else post(qwen_server, build(model))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    assert "Traceback" not in response.text and len(error["message"]) > 5
    assert post(qwen_server, chat(model, "still there?")).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("temperature", [5e-324, 1e-7])
def test_a_tiny_temperature_samples_greedily(qwen_server: RunningServer, temperature: float, stream: bool) -> None:
    model = model_of(qwen_server)
    greedy = post(qwen_server, chat(model, "Describe this image.", temperature=0, max_tokens=6)).json()
    response = post(qwen_server, chat(model, "Describe this image.", temperature=temperature, max_tokens=6, stream=stream))
    assert response.status_code == 200, response.text
    if not stream:
        assert response.json()["choices"][0]["message"] == greedy["choices"][0]["message"]
        return
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    assert all("error" not in e for e in events)
    text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
    assert text == greedy["choices"][0]["message"]["content"]


@pytest.mark.parametrize("route", ["chat/completions", "estimate"])
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a" * 8_000_000, "at least 400005 tokens: its 8000000 characters of text"),  # from its length alone
        ("The photo shows a man ironing clothes on a board. " * 12_000, "counted until over"),
    ],
    ids=["refused from its length", "refused after a few pieces"],
)
def test_text_the_context_cannot_hold_is_refused_before_it_is_tokenized(
    qwen_server: RunningServer, route: str, text: str, says: str
) -> None:
    payload = chat(model_of(qwen_server), text, stream=route == "chat/completions")
    response = httpx.post(f"{qwen_server.api}/{route}", json=payload, timeout=120)
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert says in error["message"] and "32768" in error["message"]


def test_body_over_the_limit_is_413(qwen_server: RunningServer) -> None:
    huge = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * (51 * 1024 * 1024) + b'"}]}'
    response = post(qwen_server, None, raw=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


def test_unknown_route_is_404_in_the_envelope(qwen_server: RunningServer) -> None:
    response = httpx.get(f"{qwen_server.base_url}/v1/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_openai_base_path_and_health_and_docs(qwen_server: RunningServer) -> None:
    model = model_of(qwen_server)
    assert post(qwen_server, chat(model, "hi")).status_code == 200
    hosted = httpx.post(f"{qwen_server.base_url}/openai/v1/chat/completions", json=chat(model, "hi"), timeout=60)
    assert hosted.status_code == 200 and hosted.json()["object"] == "chat.completion"
    assert httpx.get(f"{qwen_server.base_url}/health").json()["status"] == "ok"
    assert httpx.get(f"{qwen_server.base_url}/docs").status_code == 200
    assert "/v1/chat/completions" in httpx.get(f"{qwen_server.base_url}/openapi.json").json()["paths"]
