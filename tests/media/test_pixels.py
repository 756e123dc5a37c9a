"""A colour JPEG decoded whole comes as libjpeg-turbo's RGB array: the very pixels Pillow gives."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from loupe.errors import InvalidImageFormat
from loupe.media import ImageLimits, as_pillow, decode_image, pixel_bytes, pixel_size
from loupe.media.pixels import decode_jpeg_rgb

LIMITS = ImageLimits()
ORIENTED = [f"hopper_orientation_{n}.jpg" for n in range(2, 9)]


def colour_jpegs(images: Path) -> list[Path]:
    found = [p for p in sorted((images / "photos").iterdir()) if p.suffix == ".jpg"]
    found += [images / "pillow" / name for name in ("hopper.jpg", "flower.jpg", "flower2.jpg", *ORIENTED)]
    return found


def pillow_decode(data: bytes) -> np.ndarray:
    """What Pillow decodes, turned upright by its own EXIF transpose."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def test_every_colour_jpeg_decodes_to_pillows_pixels_upright(images: Path) -> None:
    paths = colour_jpegs(images)
    assert len(paths) == 7 + 3 + 7
    for path in paths:
        data = path.read_bytes()
        decoded = decode_image(data, LIMITS)
        assert isinstance(decoded.pixels, np.ndarray), path.name
        assert decoded.pixels.dtype == np.uint8 and decoded.pixels.flags.c_contiguous and decoded.pixels.flags.writeable
        assert pixel_size(decoded.pixels) == (decoded.width, decoded.height), path.name
        assert np.array_equal(decoded.pixels, pillow_decode(data)), path.name


def test_the_orientations_turn_the_picture_differently(images: Path) -> None:
    upright = [decode_image((images / "pillow" / name).read_bytes(), LIMITS).pixels for name in ORIENTED]
    reference = decode_image((images / "pillow" / "hopper.jpg").read_bytes(), LIMITS).pixels
    # Each file stores the same picture turned its own way; upright, all look like hopper.jpg.
    for name, pixels in zip(ORIENTED, upright, strict=True):
        assert pixels.shape == reference.shape, name
        assert np.abs(pixels.astype(int) - reference.astype(int)).mean() < 8, name


def test_other_images_stay_pillow_images(images: Path) -> None:
    png = decode_image((images / "pillow" / "hopper.png").read_bytes(), LIMITS)
    gray = decode_image((images / "pillow" / "hopper_gray.jpg").read_bytes(), LIMITS)
    cmyk = decode_image((images / "pillow" / "pil_sample_cmyk.jpg").read_bytes(), LIMITS)
    drafted = decode_image((images / "photos" / "boats.jpg").read_bytes(), LIMITS, (448, 448))
    for decoded in (png, gray, cmyk, drafted):
        assert isinstance(decoded.pixels, Image.Image) and decoded.pixels.mode == "RGB"
    assert pixel_size(drafted.pixels) == (960, 540)


def test_a_truncated_or_corrupt_jpeg_is_refused(images: Path) -> None:
    data = (images / "photos" / "bus.jpg").read_bytes()
    with pytest.raises(InvalidImageFormat):
        decode_image(data[: len(data) // 2], LIMITS)
    with pytest.raises(ValueError):
        decode_jpeg_rgb(data[:2000], 1)
    with pytest.raises(InvalidImageFormat):
        decode_image((images / "pillow" / "truncated_jpeg.jpg").read_bytes(), LIMITS)


def test_helpers_read_both_kinds() -> None:
    array = np.zeros((3, 5, 3), dtype=np.uint8)
    array[1, 2] = (10, 20, 30)
    image = as_pillow(array)
    assert image.mode == "RGB" and image.size == (5, 3) and image.getpixel((2, 1)) == (10, 20, 30)
    assert as_pillow(image) is image
    assert pixel_size(array) == pixel_size(image) == (5, 3)
    assert pixel_bytes(array) == 45 and pixel_bytes(image) == 60
