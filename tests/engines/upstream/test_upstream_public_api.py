"""The upstream package's public surface, pinned; and the request it builds from a prompt."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

import loupe.engines.upstream as upstream
from loupe.domain import Detail, PreparedImage, PromptMessage, Role, TextPart
from loupe.engines.upstream.encode import ImageFormat, data_url
from loupe.engines.upstream.request import openai_messages


def test_public_api() -> None:
    assert sorted(upstream.__all__) == [
        "Replica",
        "ReplicaPool",
        "UpstreamBadResponse",
        "UpstreamClient",
        "UpstreamCounters",
        "UpstreamEngine",
        "UpstreamPrompt",
        "UpstreamTimeout",
        "UpstreamUnavailable",
        "load_upstream_model",
    ]


def prepared(pixels: Image.Image, detail: Detail = Detail.LOW) -> PreparedImage:
    return PreparedImage(pixels, pixels.width, pixels.height, 640, 480, detail, "h", tokens=4)


@pytest.mark.parametrize("fmt", ["bmp", "png"])
def test_images_go_losslessly_as_the_prepared_pixels(fmt: ImageFormat) -> None:
    pixels = Image.effect_noise((57, 31), 80).convert("RGB")
    url = data_url(prepared(pixels), fmt)
    assert url.startswith(f"data:image/{fmt};base64,")
    back = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert back.size == (57, 31) and back.mode == "RGB"
    assert back.tobytes() == pixels.tobytes()


def test_messages_keep_order_and_the_applied_detail() -> None:
    image = prepared(Image.new("RGB", (8, 8)), Detail.HIGH)
    messages = [
        PromptMessage(Role.SYSTEM, (TextPart("be brief"),)),
        PromptMessage(Role.USER, (image, TextPart("what?"))),
    ]
    out = openai_messages(messages, lambda img: f"png:{img.width}")
    assert out == [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "png:8", "detail": "high"}},
                {"type": "text", "text": "what?"},
            ],
        },
    ]
