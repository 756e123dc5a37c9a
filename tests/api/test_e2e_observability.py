"""Metrics after a known set of requests, request ids on every response, and clean JSON logs."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer, start_server, stop_server
from tests.helpers import PHOTOS, PILLOW, data_url, image_part

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Callable[[str], Path]) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("observed")
    server = start_server(["--model", str(tiny_checkpoint("qwen2-vl"))], root / "server.log")
    yield server
    stop_server(server)


def samples(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{server.base_url}/metrics").text
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def chat(server: RunningServer, model: str, content: Any, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 3, **extra}
    return httpx.post(f"{server.api}/chat/completions", json=body, timeout=120)


def test_counters_and_histograms_after_known_requests(fresh: RunningServer) -> None:
    model = httpx.get(f"{fresh.api}/models").json()["data"][0]["id"]
    photo = [image_part(data_url(PHOTOS / "bus.jpg")), {"type": "text", "text": "What?"}]
    usages = [chat(fresh, model, photo).json()["usage"] for _ in range(2)]
    with httpx.stream(
        "POST",
        f"{fresh.api}/chat/completions",
        json={
            "model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3,
            "stream": True, "stream_options": {"include_usage": True},
        },
        timeout=120,
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    usages.append(json.loads(lines[-1].removeprefix("data: "))["usage"])
    tif = "data:image/png;base64," + base64.b64encode((PILLOW / "hopper.tif").read_bytes()).decode()
    assert chat(fresh, model, [image_part(tif)]).status_code == 400
    assert chat(fresh, "nope", "hi").status_code == 404

    found = samples(fresh)
    assert value(found, "loupe_requests_total", model=model, status="200") == 3
    assert value(found, "loupe_requests_total", model=model, status="400") == 1
    assert value(found, "loupe_requests_total", model="other", status="404") == 1  # not a label per name sent
    assert not [key for key in found if ("model", "nope") in key[1]]
    assert value(found, "loupe_prompt_tokens_total", model=model) == sum(u["prompt_tokens"] for u in usages)
    assert value(found, "loupe_completion_tokens_total", model=model) == sum(u["completion_tokens"] for u in usages)
    image_tokens = sum(u["prompt_tokens_details"]["image_tokens"] for u in usages)
    assert value(found, "loupe_image_tokens_total", model=model) == image_tokens > 0
    assert value(found, "loupe_images_total", model=model) == 2
    assert value(found, "loupe_image_bytes_total", model=model) == 2 * (PHOTOS / "bus.jpg").stat().st_size
    assert value(found, "loupe_image_failures_total", code="INVALID_IMAGE_FORMAT") == 1
    assert value(found, "loupe_request_duration_seconds_count", model=model) == 3
    assert value(found, "loupe_time_to_first_token_seconds_count", model=model) <= 3
    assert value(found, "loupe_queue_depth", model=model) == 0
    # what the caches keep for later requests: the photo's pixels, its embeddings, the prompts' states
    held = {cache: value(found, "loupe_cache_bytes", cache=cache) for cache in ("images", "vision", "prefix", "video_frames")}
    assert held["images"] > (PHOTOS / "bus.jpg").stat().st_size and held["vision"] > 0 and held["prefix"] > 0
    assert held["video_frames"] == 0


def test_every_response_has_a_request_id(fresh: RunningServer) -> None:
    ids = set()
    for response in (
        httpx.get(f"{fresh.base_url}/health"),
        httpx.get(f"{fresh.api}/nothing"),
        httpx.post(f"{fresh.api}/chat/completions", content=b"{"),
    ):
        rid = response.headers["x-request-id"]
        assert rid.startswith("req_") and rid not in ids
        ids.add(rid)
    echoed = httpx.get(f"{fresh.base_url}/health", headers={"x-request-id": "trace-1234abcd"})
    assert echoed.headers["x-request-id"] == "trace-1234abcd"
    forged = httpx.get(f"{fresh.base_url}/health", headers={"x-request-id": "bad id; <script>"})
    assert forged.headers["x-request-id"].startswith("req_")


def test_logs_are_json_with_request_ids_and_hold_no_image_or_key(fresh: RunningServer) -> None:
    model = httpx.get(f"{fresh.api}/models").json()["data"][0]["id"]
    url = data_url(PHOTOS / "zidane.jpg")
    secret = "lp-this-secret-must-never-be-logged-0000000000"
    response = httpx.post(
        f"{fresh.api}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": [image_part(url)]}], "max_tokens": 2},
        headers={"authorization": f"Bearer {secret}", "x-request-id": "trace-logcheck-1"},
        timeout=120,
    )
    assert response.status_code == 200
    for _ in range(100):  # the access line is written once the response has gone out
        log = fresh.log()
        entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        mine = [e for e in entries if e.get("request_id") == "trace-logcheck-1"]
        if mine:
            break
        time.sleep(0.05)
    assert mine and mine[-1]["path"] == "/v1/chat/completions" and mine[-1]["status"] == 200
    assert mine[-1]["model"] == model and "key_id" not in mine[-1]  # open server: no key
    assert not any("color_message" in e or "\x1b[" in json.dumps(e) for e in entries)
    payload = url.split(",", 1)[1]
    assert payload[:200] not in log and payload[-200:] not in log
    assert secret not in log


def test_access_lines_carry_the_error_code(fresh: RunningServer) -> None:
    response = httpx.post(
        f"{fresh.api}/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-request-id": "trace-logcheck-2"},
        timeout=60,
    )
    assert response.status_code == 404
    for _ in range(100):
        entries = [json.loads(line) for line in fresh.log().splitlines() if line.startswith("{")]
        mine = [e for e in entries if e.get("request_id") == "trace-logcheck-2" and e.get("path")]
        if mine:
            break
        time.sleep(0.05)
    assert mine[-1]["status"] == 404 and mine[-1]["error_code"] == "MODEL_NOT_FOUND" and mine[-1]["model"] == "gpt-4o"


def test_the_api_reference_declares_the_bearer_key(fresh: RunningServer) -> None:
    """So /docs offers "Authorize" and its "Try it out" sends the key."""
    document = httpx.get(f"{fresh.base_url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "description": "An API key from `loupe keys create` (lp-...)"
    }
    assert document["paths"]["/v1/chat/completions"]["post"]["security"] == [{"HTTPBearer": []}]
