from __future__ import annotations

import hashlib
import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from loupe.media.pixels import as_pillow, pixel_size
from loupe.errors import (
    ImageExceedsMaxResolution,
    ImageFileExceedsMaxSize,
    InvalidImageFormat,
    InvalidImageSize,
)
from loupe.media.decode import DecodedImage, decode_image, to_rgb
from loupe.media.limits import ImageLimits

LIMITS = ImageLimits()
VALID = [
    "hopper.jpg", "hopper.png", "hopper.webp", "hopper.gif", "hopper.bmp", "flower.jpg",
    "flower.webp", "flower2.jpg", "hopper_gray.jpg", "pil_sample_cmyk.jpg", "1_trns.png",
    "animated.gif", "animated.png",
]


def decode_file(path: Path, limits: ImageLimits = LIMITS) -> DecodedImage:
    return decode_image(path.read_bytes(), limits)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size and has no pixel data: nothing to decode, everything to refuse."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).mean())


@pytest.mark.parametrize("name", VALID)
def test_valid_pillow_images_decode_to_loaded_rgb(images: Path, name: str) -> None:
    path = images / "pillow" / name
    decoded = decode_file(path)
    # Loaded: the pixels are there without the file (an animation's later frames are dropped).
    assert not getattr(decoded.pixels, "is_animated", False)
    pixels = as_pillow(decoded.pixels)
    assert pixels.mode == "RGB"
    assert pixels.getpixel((0, 0)) is not None
    assert pixel_size(decoded.pixels) == (decoded.width, decoded.height)
    assert decoded.byte_size == path.stat().st_size
    assert len(decoded.content_hash) == 64


def test_photos_decode(images: Path) -> None:
    sizes = {p.name: pixel_size(decode_file(p).pixels) for p in sorted((images / "photos").iterdir())}
    assert sizes["boats.jpg"] == (1920, 1080)
    assert sizes["bus.jpg"] == (810, 1080)
    assert sizes["llava_example_cmp.png"] == (1280, 720)


def test_format_is_detected_not_declared(images: Path) -> None:
    assert decode_file(images / "pillow" / "hopper.webp").format == "webp"
    assert decode_file(images / "pillow" / "animated.png").format == "png"


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_makes_hopper_upright(images: Path, orientation: int) -> None:
    upright = decode_file(images / "pillow" / "hopper.jpg").pixels
    path = images / "pillow" / f"hopper_orientation_{orientation}.jpg"
    decoded = decode_file(path).pixels
    with Image.open(path) as stored:
        as_stored = stored.convert("RGB")
    assert mean_difference(decoded, upright) < 10
    assert mean_difference(as_stored, upright) > 40


def test_cmyk_and_gray_become_rgb(images: Path) -> None:
    cmyk = decode_file(images / "pillow" / "pil_sample_cmyk.jpg").pixels
    with Image.open(images / "pillow" / "pil_sample_cmyk.jpg") as original:
        assert original.mode == "CMYK"
        assert mean_difference(cmyk, original.convert("RGB")) == 0
    gray = decode_file(images / "pillow" / "hopper_gray.jpg").pixels
    red, green, blue = gray.split()
    assert red.tobytes() == green.tobytes() == blue.tobytes()


def test_transparent_palette_png_lands_on_white(images: Path) -> None:
    decoded = decode_file(images / "pillow" / "1_trns.png").pixels
    with Image.open(images / "pillow" / "1_trns.png") as original:
        alpha = np.asarray(original.convert("RGBA").getchannel("A"))
    pixels = np.asarray(decoded)
    assert (pixels[alpha == 0] == 255).all()
    assert (pixels[alpha == 255] == 0).all()


def test_animations_give_their_first_frame(images: Path) -> None:
    for name in ("animated.gif", "animated.png"):
        with Image.open(images / "pillow" / name) as original:
            assert getattr(original, "n_frames", 1) > 1
            first = original.convert("RGBA")
        background = Image.new("RGBA", first.size, (255, 255, 255, 255))
        expected = Image.alpha_composite(background, first).convert("RGB")
        assert mean_difference(decode_file(images / "pillow" / name).pixels, expected) < 1


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBA", (4, 4), (255, 0, 0, 255)), (255, 0, 0)),
        (Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
        (Image.new("L", (4, 4), 7), (7, 7, 7)),
        (Image.new("1", (4, 4), 1), (255, 255, 255)),
        (Image.new("I;16", (4, 4), 0xFFFF), (255, 255, 255)),
        (Image.new("I;16", (4, 4), 0x8000), (128, 128, 128)),
    ],
)
def test_modes_become_rgb(image: Image.Image, expected: tuple[int, int, int]) -> None:
    decoded = decode_image(encode(image), LIMITS)
    assert decoded.pixels.mode == "RGB"
    assert decoded.pixels.getpixel((1, 1)) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        (Image.new("I", (4, 4), 0x4000), (64, 64, 64)),
        (Image.new("F", (4, 4), 300.0), (255, 255, 255)),
        (Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
        (Image.new("RGBa", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    ],
)
def test_modes_no_accepted_format_yields_still_become_rgb(
    image: Image.Image, expected: tuple[int, int, int]
) -> None:
    assert to_rgb(image).getpixel((1, 1)) == expected


def test_palette_transparency_in_gif_lands_on_white() -> None:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    decoded = decode_image(encode(image, "GIF", transparency=1), LIMITS)
    assert decoded.pixels.getpixel((0, 0)) == (255, 255, 255)


def test_the_hash_is_the_files(images: Path) -> None:
    data = (images / "pillow" / "hopper.png").read_bytes()
    assert decode_image(data, LIMITS).content_hash == hashlib.sha256(data).hexdigest()
    # The same picture in another file is another key: the bytes decide the pixels.
    assert decode_file(images / "pillow" / "hopper.bmp").content_hash != hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("name", ["hopper.tif", "hopper.psd", "hopper.avif", "hopper_16bit.pgm"])
def test_unsupported_formats(images: Path, name: str) -> None:
    with pytest.raises(InvalidImageFormat) as caught:
        decode_file(images / "pillow" / name)
    assert caught.value.code == "INVALID_IMAGE_FORMAT"


@pytest.mark.parametrize("name", ["truncated_jpeg.jpg", "truncated_image.png", "broken.png"])
def test_broken_images_are_refused_fast(images: Path, name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidImageFormat):
        decode_file(images / "pillow" / name)
    assert time.perf_counter() - started < 2
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_decompression_bomb_is_refused_fast(images: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageExceedsMaxResolution) as caught:
        decode_file(images / "pillow" / "decompression_bomb.gif")
    assert caught.value.code == "IMAGE_EXCEEDS_MAX_RESOLUTION"
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (10_000, 10_000),  # past Pillow's warning threshold: no warning may escape
        (20_000, 20_000),  # past Pillow's error threshold
        (10_000, 6_000),  # past Loupe's pixel limit only
        (20_000, 10),  # a side too long
        (100_000, 100_000),
    ],
)
def test_declared_size_is_refused_before_decoding(width: int, height: int) -> None:
    started = time.perf_counter()
    with pytest.raises(ImageExceedsMaxResolution):
        decode_image(png_header_only(width, height), LIMITS)
    assert time.perf_counter() - started < 2


def test_at_the_limits_the_size_is_checked_then_data_is_required() -> None:
    limits = ImageLimits(max_pixels=100, max_side=10)
    with pytest.raises(InvalidImageFormat):
        decode_image(png_header_only(10, 10), limits)  # allowed size, but no pixel data


def test_jpeg_with_too_many_scans_is_refused(images: Path) -> None:
    data = (images / "pillow" / "hopper.jpg").read_bytes() + b"\xff\xda\x00\x02" * 101
    started = time.perf_counter()
    with pytest.raises(InvalidImageFormat, match="scans"):
        decode_image(data, LIMITS)
    assert time.perf_counter() - started < 2


def test_too_small(images: Path) -> None:
    with pytest.raises(InvalidImageSize, match="at least 200"):
        decode_file(images / "pillow" / "hopper.png", ImageLimits(min_side=200))


def test_too_many_bytes(images: Path) -> None:
    with pytest.raises(ImageFileExceedsMaxSize):
        decode_file(images / "pillow" / "hopper.png", ImageLimits(max_bytes=1000))


def test_truncated_loading_switched_on_is_a_programming_error(
    images: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        decode_file(images / "pillow" / "truncated_jpeg.jpg")


FORWARDABLE = ["hopper.jpg", "hopper.png", "hopper.webp", "flower.jpg", "flower.webp", "flower2.jpg"]


@pytest.mark.parametrize("name", FORWARDABLE)
def test_a_file_that_holds_exactly_its_pixels_is_kept_as_the_source(images: Path, name: str) -> None:
    data = (images / "pillow" / name).read_bytes()
    decoded = decode_image(data, LIMITS)
    assert decoded.source is not None
    assert decoded.source.data == data and decoded.source.format == decoded.format
    # What an upstream makes of the file (vLLM: Pillow, EXIF transpose, RGB) is Loupe's picture.
    with Image.open(io.BytesIO(data)) as theirs:
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(theirs).convert("RGB")), np.asarray(as_pillow(decoded.pixels)))


@pytest.mark.parametrize(
    "name",
    [
        *(f"hopper_orientation_{o}.jpg" for o in range(2, 9)),  # turned upright by Loupe
        "hopper_gray.jpg", "pil_sample_cmyk.jpg",  # converted to RGB
        "1_trns.png", "animated.png",  # flattened on white, first frame
        "hopper.gif", "hopper.bmp",  # formats not every upstream reads
    ],
)  # fmt: skip
def test_a_file_whose_pixels_loupe_transforms_keeps_no_source(images: Path, name: str) -> None:
    assert decode_file(images / "pillow" / name).source is None


def test_rgba_and_a_png_exif_chunk_keep_no_source() -> None:
    assert decode_image(encode(Image.new("RGBA", (32, 32), (9, 9, 9, 255))), LIMITS).source is None
    plain = Image.new("RGB", (32, 32), (9, 9, 9))
    assert decode_image(encode(plain), LIMITS).source is not None
    exif = Image.Exif()
    exif[0x0112] = 1  # even upright: a decoder may read an eXIf chunk Loupe does not
    assert decode_image(encode(plain, exif=exif), LIMITS).source is None
