"""JPEGs decode at a DCT scale only when the planned size is at most half the source, upright."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from loupe.media.pixels import pixel_size
from loupe.media.decode import decode_image
from loupe.media.draft import draft_scale
from loupe.media.limits import ImageLimits
from tests.helpers import PHOTOS

LIMITS = ImageLimits()
# The transpose that turns an upright image into what a camera stores with that EXIF orientation.
TO_STORED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
FROM_STORED = {**TO_STORED, 6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}


def photo(name: str) -> Image.Image:
    if not PHOTOS.is_dir():
        pytest.skip(f"the shared photos are not at {PHOTOS}")
    return Image.open(PHOTOS / name).convert("RGB")


def jpeg(image: Image.Image, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.parametrize(
    ("source", "target", "scale"),
    [((1920, 1080), (448, 448), 2), ((1920, 1080), (960, 540), 2), ((1920, 1080), (961, 540), 1),
     ((4000, 3000), (448, 448), 4), ((4000, 3000), (100, 100), 8), ((1920, 1080), (2048, 1152), 1)],
)
def test_draft_scale_is_the_largest_dct_scale_still_covering_the_target(
    source: tuple[int, int], target: tuple[int, int], scale: int
) -> None:
    assert draft_scale(source, target) == scale


@pytest.fixture
def drafts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Any, mode: Any, size: Any) -> Any:
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return calls


def test_without_a_target_or_above_half_the_source_the_decode_is_full(drafts: list[tuple[int, int]]) -> None:
    data = jpeg(photo("boats.jpg"))
    full = decode_image(data, LIMITS)
    near = decode_image(data, LIMITS, target=(1932, 1092))
    assert drafts == []
    assert pixel_size(full.pixels) == pixel_size(near.pixels) == (1920, 1080)
    assert np.array_equal(np.asarray(full.pixels), np.asarray(near.pixels))
    assert full.content_hash == near.content_hash


def test_at_half_the_source_the_decode_is_drafted_and_still_covers_the_target(drafts: list[tuple[int, int]]) -> None:
    data = jpeg(photo("boats.jpg"))
    decoded = decode_image(data, LIMITS, target=(448, 448))
    assert drafts == [(448, 448)]
    assert pixel_size(decoded.pixels) == (960, 540) and decoded.pixels.mode == "RGB"
    # The picture's own size is still reported: plans and usage speak of it.
    assert (decoded.width, decoded.height) == (1920, 1080)
    # The file's hash: with the target it decides the pixels (caches key on both).
    assert decoded.content_hash == decode_image(data, LIMITS).content_hash


def test_a_draft_is_close_to_the_full_decode_downscaled() -> None:
    source = photo("boats.jpg")
    decoded = decode_image(jpeg(source), LIMITS, target=(480, 270))
    expected = source.resize(pixel_size(decoded.pixels), Image.Resampling.BOX)
    difference = np.abs(np.asarray(decoded.pixels, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert difference.mean() < 3


def test_other_formats_are_never_drafted(drafts: list[tuple[int, int]]) -> None:
    out = io.BytesIO()
    photo("bus.jpg").save(out, format="PNG")
    decoded = decode_image(out.getvalue(), LIMITS, target=(100, 100))
    assert pixel_size(decoded.pixels) == (810, 1080) and drafts == []


@pytest.mark.parametrize("orientation", range(1, 9))
def test_drafted_images_come_upright_cropped_to_whole_pixels(orientation: int) -> None:
    source = photo("boats.jpg").crop((0, 0, 1917, 1077))  # odd sides: the draft rounds them up
    stored = source.transpose(TO_STORED[orientation]) if orientation in TO_STORED else source
    decoded = decode_image(jpeg(stored, orientation), LIMITS, target=(400, 250))
    assert (decoded.width, decoded.height) == (1917, 1077)
    assert pixel_size(decoded.pixels) == (479, 269)  # 1917 / 4 and 1077 / 4, whole pixels only
    whole = stored.crop((0, 0, stored.width // 4 * 4, stored.height // 4 * 4))  # at the stored edges
    upright = whole.transpose(FROM_STORED[orientation]) if orientation in FROM_STORED else whole
    expected = upright.resize((479, 269), Image.Resampling.BOX)
    difference = np.abs(np.asarray(decoded.pixels, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert difference.mean() < 3
