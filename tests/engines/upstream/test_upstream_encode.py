"""Images go upstream losslessly at their planned size (BMP, or PNG), encoded once per file and
size; a file that holds exactly its pixels, at its own size, goes as the client sent it."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from loupe.domain import Detail, PreparedImage, SourceFile
from loupe.engines.upstream import encode
from loupe.engines.upstream.encode import EncodedImages, ImageFormat, data_url


def prepared(width: int, height: int, digest: str = "a" * 64) -> PreparedImage:
    pixels = Image.linear_gradient("L").convert("RGB").resize((512, 384))
    return PreparedImage(
        pixels=pixels, width=width, height=height, original_width=512, original_height=384,
        detail=Detail.HIGH, content_hash=digest,
    )


def decoded(url: str, fmt: str = "bmp") -> Image.Image:
    assert url.startswith(f"data:image/{fmt};base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == fmt.upper()
    return image


def png_size(url: str) -> tuple[int, int]:
    return decoded(url).size


@pytest.mark.parametrize("fmt", ["bmp", "png"])
def test_the_image_has_the_planned_size_and_exactly_the_resized_pixels(fmt: ImageFormat) -> None:
    image = prepared(224, 168)
    expected = image.pixels.resize((224, 168), Image.Resampling.BICUBIC)
    sent = decoded(data_url(image, fmt), fmt)
    assert sent.size == (224, 168) and sent.convert("RGB").tobytes() == expected.tobytes()
    assert decoded(data_url(prepared(512, 384), fmt), fmt).size == (512, 384)


def test_an_array_of_pixels_is_sent_as_it_is() -> None:
    array = np.asarray(Image.effect_noise((64, 48), 80).convert("RGB"))
    image = PreparedImage(pixels=array, width=64, height=48, original_width=64, original_height=48, detail=Detail.HIGH, content_hash="c")
    assert np.array_equal(np.asarray(decoded(data_url(image)).convert("RGB")), array)


def test_a_later_turn_reuses_the_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []

    def counting(image: PreparedImage, fmt: ImageFormat) -> str:
        calls.append((image.width, image.height))
        return data_url(image, fmt)

    monkeypatch.setattr(encode, "data_url", counting)
    urls = EncodedImages(64 * 1024 * 1024)
    first = urls(prepared(224, 168))
    assert urls(prepared(224, 168)) is first
    assert png_size(urls(prepared(448, 336))) == (448, 336)  # another planned size: encoded anew
    urls(prepared(224, 168, digest="b" * 64))  # another file
    assert calls == [(224, 168), (448, 336), (224, 168)]


def test_without_room_every_call_encodes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(encode, "data_url", lambda image, fmt: calls.append(1) or data_url(image, fmt))
    urls = EncodedImages(0)
    assert urls(prepared(224, 168)) == urls(prepared(224, 168))
    assert len(calls) == 2


@pytest.mark.parametrize("fmt", ["bmp", "png"])
def test_a_source_file_at_its_own_size_goes_byte_for_byte(fmt: ImageFormat) -> None:
    file = io.BytesIO()
    Image.effect_noise((512, 384), 80).convert("RGB").save(file, format="JPEG")
    source = SourceFile(file.getvalue(), "jpeg")
    image = PreparedImage(
        pixels=Image.open(file).convert("RGB"), width=512, height=384, original_width=512, original_height=384,
        detail=Detail.HIGH, content_hash="d", source=source,
    )  # fmt: skip
    url = data_url(image, fmt)
    assert url.startswith("data:image/jpeg;base64,") and base64.b64decode(url.split(",", 1)[1]) == source.data
    # Planned smaller: the pixels Loupe resized go, losslessly, as before.
    smaller = PreparedImage(
        pixels=image.pixels, width=256, height=192, original_width=512, original_height=384,
        detail=Detail.LOW, content_hash="d", source=source,
    )  # fmt: skip
    assert decoded(data_url(smaller, fmt), fmt).size == (256, 192)
