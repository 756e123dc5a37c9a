"""What the gateway sends upstream for each image, through the whole intake (data URL, validation,
plan, prepare): the client's file byte for byte where it holds exactly the pixels Loupe counted
at their planned size; Loupe's upright, flattened or resized pixels, losslessly, otherwise."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image, ImageOps

from loupe.engines.upstream import UpstreamEngine, load_upstream_model
from loupe.models import TokenCounter
from tests.engines.upstream.upstream_support import ask, completed, gateway

UPSTREAM = "http://upstream.test/v1"


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64," + base64.b64encode(data).decode()


def saved(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def photo(width: int, height: int) -> Image.Image:
    """A picture with structure in both directions, so a turn or a flip shows."""
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    pixels = np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)), (x + y) / 2], axis=2)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


class Upstream:
    """A vLLM-like replica on httpx.MockTransport that keeps every chat body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "up", "owned_by": "vllm", "max_model_len": 8192}]})
        self.bodies.append(json.loads(request.content))
        frames = [
            {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]},
            {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        ]
        body = b"".join(b"data: " + json.dumps(f).encode() + b"\n\n" for f in frames) + b"data: [DONE]\n\n"
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    def sent_image(self) -> tuple[str, bytes]:
        """The media type and bytes of the last request's image."""
        parts = self.bodies[-1]["messages"][0]["content"]
        url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
        header, _, payload = url.partition(",")
        return header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(payload)


@pytest_asyncio.fixture
async def served(tiny_checkpoint: Callable[[str], Path]) -> AsyncIterator[tuple[UpstreamEngine, TokenCounter, Upstream]]:
    upstream = Upstream()
    engine, counter = load_upstream_model(
        "gw", str(tiny_checkpoint("qwen2-vl")), [UPSTREAM], "up", context_size=None, max_images=2, budget=1024,
        transport=httpx.MockTransport(upstream),
    )  # fmt: skip
    await engine.start()
    yield engine, counter, upstream
    await engine.close()


async def send(served: tuple[UpstreamEngine, TokenCounter, Upstream], url: str, detail: str) -> tuple[str, bytes]:
    engine, counter, upstream = served
    await completed(gateway(engine, counter), ask("gw", "What is it?", (url, detail), max_tokens=2))
    return upstream.sent_image()


@pytest.mark.asyncio
@pytest.mark.parametrize(("fmt", "media_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
async def test_a_file_at_its_planned_size_goes_upstream_byte_for_byte(
    served: tuple[UpstreamEngine, TokenCounter, Upstream], fmt: str, media_type: str
) -> None:
    file = saved(photo(448, 448), fmt)  # Qwen2-VL keeps 448 x 448 at detail high
    # Labelled by what the bytes are, whatever the client's URL said.
    assert await send(served, data_url(file, "image/png"), "high") == (media_type, file)


@pytest.mark.asyncio
async def test_an_exif_turned_photo_goes_upright(served: tuple[UpstreamEngine, TokenCounter, Upstream]) -> None:
    stored = photo(448, 336)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: upright it is 336 x 448
    file = saved(stored, "JPEG", exif=exif, quality=95)
    media_type, sent = await send(served, data_url(file, "image/jpeg"), "high")
    assert media_type == "image/bmp"
    with Image.open(io.BytesIO(file)) as original:
        upright = ImageOps.exif_transpose(original).convert("RGB")
    with Image.open(io.BytesIO(sent)) as received:
        assert received.size == upright.size == (336, 448)
        assert np.array_equal(np.asarray(received.convert("RGB")), np.asarray(upright))


@pytest.mark.asyncio
async def test_transparency_goes_flattened_on_white(served: tuple[UpstreamEngine, TokenCounter, Upstream]) -> None:
    clear = Image.new("RGBA", (448, 448), (200, 0, 0, 0))
    media_type, sent = await send(served, data_url(saved(clear, "PNG"), "image/png"), "high")
    assert media_type == "image/bmp"
    with Image.open(io.BytesIO(sent)) as received:
        assert received.convert("RGB").getcolors() == [(448 * 448, (255, 255, 255))]


@pytest.mark.asyncio
async def test_a_file_planned_smaller_goes_as_the_resized_pixels(served: tuple[UpstreamEngine, TokenCounter, Upstream]) -> None:
    file = saved(photo(1344, 1344), "PNG")
    media_type, sent = await send(served, data_url(file, "image/png"), "low")
    with Image.open(io.BytesIO(sent)) as received:
        assert media_type == "image/bmp" and received.size == (448, 448)  # Qwen2-VL's `low`
