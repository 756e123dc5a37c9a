"""Header-only probing: the size an image has once upright, and refusals without decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from loupe.media.pixels import pixel_size
from loupe.errors import ImageExceedsMaxResolution, InvalidImageFormat
from loupe.media import ImageLimits, decode_image, probe_image
from tests.helpers import PHOTOS, PILLOW


@pytest.mark.parametrize("name", ["boats.jpg", "bus.jpg", "llava_example_cmp.png"])
def test_probe_matches_the_decoded_size(name: str) -> None:
    data = (PHOTOS / name).read_bytes()
    header = probe_image(data, ImageLimits())
    decoded = decode_image(data, ImageLimits())
    assert (header.width, header.height) == (decoded.width, decoded.height)
    assert header.format == decoded.format and header.byte_size == len(data)


@pytest.mark.parametrize("n", range(2, 9))
def test_probe_applies_exif_orientation(n: int) -> None:
    data = (PILLOW / f"hopper_orientation_{n}.jpg").read_bytes()
    decoded = decode_image(data, ImageLimits())
    assert probe_image(data, ImageLimits()).width == decoded.width
    assert probe_image(data, ImageLimits()).height == decoded.height


def test_probe_refuses_a_bomb_and_an_unsupported_format() -> None:
    with pytest.raises(ImageExceedsMaxResolution):
        probe_image((PILLOW / "decompression_bomb.gif").read_bytes(), ImageLimits())
    with pytest.raises(InvalidImageFormat):
        probe_image((PILLOW / "hopper.tif").read_bytes(), ImageLimits())


def test_probe_swaps_the_sides_of_a_quarter_turned_photo() -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (200, 100), "red").save(buf, format="JPEG", exif=exif)
    header = probe_image(buf.getvalue(), ImageLimits())
    assert (header.width, header.height) == (100, 200)
    assert pixel_size(decode_image(buf.getvalue(), ImageLimits()).pixels) == (100, 200)


JPEGS = sorted([*PHOTOS.glob("*.jpg"), *PILLOW.glob("*.jpg")])


@pytest.mark.parametrize("path", JPEGS, ids=[p.name for p in JPEGS])
def test_a_jpeg_cut_short_is_refused_by_the_probe_as_by_decoding(path: Path) -> None:
    """The estimate must not accept what the request will refuse: probe and decode agree."""
    data = path.read_bytes()
    try:
        decode_image(data, ImageLimits())
        decodes = True
    except InvalidImageFormat:
        decodes = False
    try:
        probe_image(data, ImageLimits())
        probes = True
    except InvalidImageFormat:
        probes = False
    assert probes == decodes
    if not decodes:
        return
    for cut in (data[: len(data) * 2 // 3], data[:-2]):  # an upload stopped midway; the end marker lost
        with pytest.raises(InvalidImageFormat, match="truncated"):
            probe_image(cut, ImageLimits())
        with pytest.raises(InvalidImageFormat, match="truncated"):
            decode_image(cut, ImageLimits())
