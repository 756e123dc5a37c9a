"""Images go upstream as PNGs at their planned size, encoded once per file and size."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from loupe.domain import Detail, PreparedImage
from loupe.engines.upstream import encode
from loupe.engines.upstream.encode import EncodedImages, data_url


def prepared(width: int, height: int, digest: str = "a" * 64) -> PreparedImage:
    pixels = Image.linear_gradient("L").convert("RGB").resize((512, 384))
    return PreparedImage(
        pixels=pixels, width=width, height=height, original_width=512, original_height=384,
        detail=Detail.HIGH, content_hash=digest,
    )


def png_size(url: str) -> tuple[int, int]:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).size


def test_the_png_has_the_planned_size() -> None:
    assert png_size(data_url(prepared(224, 168))) == (224, 168)
    assert png_size(data_url(prepared(512, 384))) == (512, 384)


def test_a_later_turn_reuses_the_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def counting(image: PreparedImage) -> str:
        calls.append((image.width, image.height))
        return data_url(image)

    monkeypatch.setattr(encode, "data_url", counting)
    urls = EncodedImages(64 * 1024 * 1024)
    first = urls(prepared(224, 168))
    assert urls(prepared(224, 168)) is first
    assert png_size(urls(prepared(448, 336))) == (448, 336)  # another planned size: encoded anew
    urls(prepared(224, 168, digest="b" * 64))  # another file
    assert calls == [(224, 168), (448, 336), (224, 168)]


def test_without_room_every_call_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(encode, "data_url", lambda image: calls.append(1) or data_url(image))
    urls = EncodedImages(0)
    assert urls(prepared(224, 168)) == urls(prepared(224, 168))
    assert len(calls) == 2
