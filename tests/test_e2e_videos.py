"""Video input through a real `loupe serve`, driven by the official openai client: `video_url`
parts as data URLs and fetched URLs, the estimate equal to the usage (video tokens apart),
later turns reusing the video, refusals with clear codes, hostile files refused quickly."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, data_url, image_part
from tests.video_clips import clip

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def video_host() -> Iterator[str]:
    """A loopback server that serves the session's MP4 clip at /clip.mp4."""
    data = clip("zoom").data

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/clip.mp4":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/clip.mp4"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture(scope="module")
def server(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    config = tmp_path_factory.mktemp("videos") / "loupe.toml"
    config.write_text(
        f"""
[fetch]
allow_media_hosts = ["127.0.0.1"]

[[models]]
id = "qwen"
checkpoint = "{tiny_checkpoint("qwen2.5-vl")}"
input_price_per_m = 1
[models.videos]
max_frames = 16

[[models]]
id = "glm"
checkpoint = "{tiny_checkpoint("glm4v")}"

[[models]]
id = "llava"
checkpoint = "{tiny_checkpoint("llava")}"
"""
    )
    return serve("--config", str(config))


def video_part(name: str = "mp4", **fields: Any) -> dict[str, Any]:
    url = "data:video/mp4;base64," + base64.b64encode(clip(name).data).decode()
    return {"type": "video_url", "video_url": {"url": url, **fields}}


def raw_part(data: bytes, mime: str = "video/mp4") -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": f"data:{mime};base64," + base64.b64encode(data).decode()}}


def payload(model: str, *parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    content = [*parts, {"type": "text", "text": "What happens?"}]
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 3, **extra}


def post(server: RunningServer, route: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.api}/{route}", json=body, timeout=120)


def refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_the_official_client_sends_a_video_and_the_estimate_equals_the_usage(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=120)
    part = video_part(fps=2.0, max_frames=6, detail="low")
    body = payload("qwen", part)
    estimate = post(server, "estimate", body).json()
    reply = client.chat.completions.create(model="qwen", messages=body["messages"], max_tokens=3)  # type: ignore[arg-type]
    assert reply.usage is not None
    usage = reply.usage.model_dump()
    assert usage["prompt_tokens"] == estimate["prompt_tokens"]
    assert usage["prompt_tokens_details"]["video_tokens"] == estimate["video_tokens"] > 0
    assert usage["prompt_tokens_details"]["image_tokens"] == 0
    [planned] = estimate["videos"]
    assert (planned["width"], planned["height"], planned["frames"], planned["detail_applied"]) == (320, 240, 6, "low")
    assert estimate["video_tokens"] >= planned["tokens"] > 0
    assert estimate["cost"]["prompt_only"] == str(estimate["prompt_tokens"] / 1_000_000).rstrip("0")


def test_a_stream_reports_video_tokens(server: RunningServer) -> None:
    client = openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=120)
    body = payload("qwen", video_part("zoom", max_frames=4))
    chunks = list(
        client.chat.completions.create(
            model="qwen", messages=body["messages"], max_tokens=3, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.model_dump()["prompt_tokens_details"]["video_tokens"] > 0


def test_a_later_turn_reuses_the_video(server: RunningServer) -> None:
    first = payload("qwen", video_part("zoom", max_frames=4), max_tokens=2)
    answer = post(server, "chat/completions", first).json()
    second = {
        **first,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": answer["choices"][0]["message"]["content"]},
            {"role": "user", "content": "And then?"},
        ],
    }
    usage = post(server, "chat/completions", second).json()["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= answer["usage"]["prompt_tokens"]
    assert usage["prompt_tokens_details"]["video_tokens"] == answer["usage"]["prompt_tokens_details"]["video_tokens"]


def test_images_and_a_video_together(server: RunningServer) -> None:
    body = payload("qwen", image_part(data_url(PHOTOS / "bus.jpg"), "low"), video_part("zoom", max_frames=4))
    estimate = post(server, "estimate", body).json()
    usage = post(server, "chat/completions", body).json()["usage"]
    details = usage["prompt_tokens_details"]
    assert (details["image_tokens"], details["video_tokens"]) == (estimate["image_tokens"], estimate["video_tokens"])
    assert details["text_tokens"] == usage["prompt_tokens"] - details["image_tokens"] - details["video_tokens"]


def test_a_fetched_video(server: RunningServer, video_host: str) -> None:
    body = payload("qwen", {"type": "video_url", "video_url": {"url": video_host, "max_frames": 4}})
    response = post(server, "chat/completions", body)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens_details"]["video_tokens"] > 0


def test_models_say_which_take_video(server: RunningServer) -> None:
    models = {m["id"]: m for m in httpx.get(f"{server.api}/models").json()["data"]}
    assert models["qwen"]["capabilities"]["video"] and models["qwen"]["max_videos"] == 4
    assert not models["llava"]["capabilities"]["video"] and models["llava"]["max_videos"] == 0


def test_refusals_name_the_model_the_part_and_the_field(server: RunningServer) -> None:
    error = refusal(post(server, "chat/completions", payload("llava", video_part())))
    assert error["code"] == "VIDEO_NOT_SUPPORTED" and "'llava'" in error["message"]
    mixed = payload("glm", image_part(data_url(PHOTOS / "bus.jpg")), video_part())
    assert refusal(post(server, "chat/completions", mixed))["code"] == "VIDEO_COMBINATION_NOT_SUPPORTED"
    error = refusal(post(server, "estimate", payload("qwen", video_part(max_frames=17))))
    assert error["code"] == "TOO_MANY_VIDEO_FRAMES" and error["param"] == "messages[0].content[0].video_url.max_frames"
    error = refusal(post(server, "chat/completions", payload("qwen", video_part(fps=0))))
    assert error["param"] == "messages[0].content[0].video_url.fps"
    error = refusal(post(server, "chat/completions", payload("qwen", video_part(detail="ultra"))))
    assert error["param"] == "messages[0].content[0].video_url.detail"
    system = {"role": "system", "content": [video_part()]}
    error = refusal(post(server, "chat/completions", {"model": "qwen", "messages": [system], "max_tokens": 1}))
    assert error["param"] == "messages[0].content[0].video_url"


def test_hostile_files_are_refused_and_the_server_lives_on(server: RunningServer) -> None:
    data = clip("mp4").data
    corrupt = data[:2000] + bytes(range(256)) * 40 + data[2000 + 256 * 40 :]
    cases = {
        "truncated": raw_part(data[: len(data) // 3]),
        "corrupt": raw_part(corrupt),
        "a photo": raw_part((PHOTOS / "bus.jpg").read_bytes()),
        "text": raw_part(b"#EXTM3U\n#EXT-X-TARGETDURATION:10\nfile:///etc/passwd\n"),
        "empty": raw_part(b"\x00" * 64),
    }
    for name, part in cases.items():
        response = post(server, "chat/completions", payload("qwen", part))
        assert 400 <= response.status_code < 500, (name, response.text)
        assert response.json()["error"]["code"].startswith(("INVALID_VIDEO", "VIDEO_")), name
    assert server.alive()
    assert post(server, "chat/completions", payload("qwen", video_part("zoom", max_frames=4))).status_code == 200
