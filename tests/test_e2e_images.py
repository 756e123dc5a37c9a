"""Image intake through a real server: SSRF refusals, opted-in fetching, the Pillow corpus, detail."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer
from tests.helpers import PHOTOS, PILLOW, billed, data_url, image_part
from tests.media import support

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def image_host() -> Iterator[support.LocalServer]:
    yield from support.serve(None)


@pytest.fixture(scope="module")
def fetching_server(
    serve: Callable[..., RunningServer], tiny_checkpoint: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> RunningServer:
    config = tmp_path_factory.mktemp("fetching") / "loupe.toml"
    config.write_text(
        f"""
[fetch]
allow_media_hosts = ["127.0.0.1"]
read_timeout_s = 1.0
total_timeout_s = 3.0

[[models]]
id = "qwen"
checkpoint = "{tiny_checkpoint("qwen2-vl")}"
[models.images]
max_image_bytes = 2000000
"""
    )
    return serve("--config", str(config))


def ask(server: RunningServer, *parts: dict[str, Any], model: str | None = None) -> httpx.Response:
    model = model or httpx.get(f"{server.api}/models").json()["data"][0]["id"]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "What is it?"}]}],
        "max_tokens": 1,
    }
    return httpx.post(f"{server.api}/chat/completions", json=body, timeout=60)


def forbidden_urls(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/photo.jpg",
        f"http://127.1:{port}/photo.jpg",
        f"http://2130706433:{port}/photo.jpg",
        f"http://0x7f000001:{port}/photo.jpg",
        f"http://0177.0.0.1:{port}/photo.jpg",
        f"http://[::ffff:127.0.0.1]:{port}/photo.jpg",
        f"http://[::1]:{port}/photo.jpg",
        f"http://localhost:{port}/photo.jpg",
        f"http://user:secret@127.0.0.1:{port}/photo.jpg",
        f"http:\\\\127.0.0.1:{port}\\photo.jpg",
        f"http://127.0.0.2\\@127.0.0.1:{port}/photo.jpg",
        "file:///etc/passwd",
        f"ftp://127.0.0.1:{port}/photo.jpg",
        f"gopher://127.0.0.1:{port}/_GET",
    ]


def test_loopback_and_odd_urls_are_refused_without_a_request(
    qwen_server: RunningServer, image_host: support.LocalServer
) -> None:
    for url in forbidden_urls(image_host.port):
        response = ask(qwen_server, image_part(url))
        assert response.status_code == 400, (url, response.text)
        error = response.json()["error"]
        assert error["code"] == "IMAGE_URL_FORBIDDEN", (url, error)
        assert error["param"] == "messages[0].content[0].image_url"
    assert image_host.paths == []
    assert ask(qwen_server, image_part(data_url(PHOTOS / "bus.jpg"))).status_code == 200


def test_an_allowed_host_is_fetched_and_counts_like_the_same_bytes_inline(
    fetching_server: RunningServer, image_host: support.LocalServer
) -> None:
    fetched = ask(fetching_server, image_part(image_host.url("/photo.jpg")))
    assert fetched.status_code == 200, fetched.text
    inline = ask(fetching_server, image_part(data_url(support.PHOTO)))
    assert billed(fetched.json()["usage"]) == billed(inline.json()["usage"])
    redirected = ask(fetching_server, image_part(image_host.url("/redirect")))
    assert redirected.status_code == 200
    assert "/photo.jpg" in image_host.paths and "/redirect" in image_host.paths


def test_fetch_limits_cut_endless_and_slow_bodies(
    fetching_server: RunningServer, image_host: support.LocalServer
) -> None:
    endless = ask(fetching_server, image_part(image_host.url("/forever")))
    assert endless.status_code == 400
    assert endless.json()["error"]["code"] == "IMAGE_FILE_EXCEEDS_MAX_SIZE"
    slow = ask(fetching_server, image_part(image_host.url("/slow")))
    assert slow.status_code == 400
    assert slow.json()["error"]["code"] == "IMAGE_FETCH_FAILED"
    loop = ask(fetching_server, image_part(image_host.url("/redirect-loop")))
    assert loop.json()["error"]["code"] == "IMAGE_FETCH_FAILED"


VALID = [
    "hopper.jpg", "hopper.png", "hopper.webp", "hopper.gif", "hopper.bmp", "flower.jpg", "flower.webp",
    "flower2.jpg", "hopper_gray.jpg", "pil_sample_cmyk.jpg", "1_trns.png", "animated.gif", "animated.png",
]
REFUSED = {
    "hopper.tif": "INVALID_IMAGE_FORMAT",
    "hopper.psd": "INVALID_IMAGE_FORMAT",
    "hopper.avif": "INVALID_IMAGE_FORMAT",
    "hopper_16bit.pgm": "INVALID_IMAGE_FORMAT",
    "truncated_jpeg.jpg": "INVALID_IMAGE_FORMAT",
    "truncated_image.png": "INVALID_IMAGE_FORMAT",
    "broken.png": "INVALID_IMAGE_FORMAT",
    "decompression_bomb.gif": "IMAGE_EXCEEDS_MAX_RESOLUTION",
}


def pillow_url(name: str) -> str:
    # The declared type is deliberately generic: Loupe decides the format from the bytes.
    return "data:image/png;base64," + base64.b64encode((PILLOW / name).read_bytes()).decode()


@pytest.mark.parametrize("name", VALID)
def test_valid_corpus_images_are_accepted(qwen_server: RunningServer, name: str) -> None:
    response = ask(qwen_server, image_part(pillow_url(name)))
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens_details"]["image_tokens"] > 0


@pytest.mark.parametrize(("name", "code"), sorted(REFUSED.items()))
def test_broken_corpus_images_are_refused(qwen_server: RunningServer, name: str, code: str) -> None:
    response = ask(qwen_server, image_part(data_url(PHOTOS / "bus.jpg")), image_part(pillow_url(name)))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == "messages[0].content[1].image_url"
    assert qwen_server.alive()


def test_too_many_images(qwen_server: RunningServer) -> None:
    parts = [image_part(pillow_url("hopper.png")) for _ in range(9)]
    response = ask(qwen_server, *parts)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TOO_MANY_IMAGES"


def test_detail_levels_order_and_documented_numbers(qwen_server: RunningServer) -> None:
    def tokens(detail: str | None) -> int:
        response = ask(qwen_server, image_part(data_url(PHOTOS / "boats.jpg"), detail))
        assert response.status_code == 200, response.text
        return int(response.json()["usage"]["prompt_tokens_details"]["image_tokens"])

    low, auto, high, omitted = tokens("low"), tokens("auto"), tokens("high"), tokens(None)
    assert low == 256
    assert low < auto == omitted < high  # an image without detail is processed as auto, as OpenAI does
    assert auto <= 1024
    # The tiny checkpoint carries Qwen2-VL-2B's published processor settings: 1920x1080 -> 1932x1092.
    assert high == 2691 and auto == 1008
