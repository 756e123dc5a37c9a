"""Turn image bytes into a validated, upright RGB picture: header check first, then decode."""

from __future__ import annotations

import hashlib
import io
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from loupe.domain import SourceFile
from loupe.errors import (
    ImageExceedsMaxResolution,
    ImageFileExceedsMaxSize,
    InvalidImageFormat,
    InvalidImageSize,
)
from loupe.media.draft import draft
from loupe.media.formats import PILLOW_FORMATS, sniff_format
from loupe.media.limits import ImageLimits
from loupe.media.pixels import Pixels, decode_jpeg_rgb

_WHITE = (255, 255, 255)
# EXIF orientation -> the transpose that makes the stored picture upright.
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
QUARTER_TURNS = frozenset({5, 6, 7, 8})
"""EXIF orientations that turn the picture a quarter: width and height swap once upright."""
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Formats whose files every upstream server decodes (vLLM, transformers serve, another Loupe).
_FORWARDABLE_FORMATS = frozenset({"jpeg", "png", "webp"})
# Each progressive JPEG scan re-walks the whole image: thousands of tiny scans make a small file
# cost minutes of CPU. Encoders write about ten.
MAX_JPEG_SCANS = 100
_JPEG_START_OF_SCAN = b"\xff\xda"
_PNG_EXIF = b"eXIf"

# What Pillow raises for data it cannot parse; translated here, in one place.
_PILLOW_FAILURES = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)

# warnings.catch_warnings swaps process-wide state and is not thread-safe; decodes run on worker
# threads, so Loupe's own uses of it take turns. Only header parsing happens under the lock.
_WARNINGS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """A fully loaded RGB image with EXIF orientation applied.

    `pixels` is a Pillow image, or for a colour JPEG decoded whole, the RGB array libjpeg-turbo
    wrote (see `media.pixels`). `width` x `height` is the picture's upright size; `pixels` has
    that size unless it was decoded for a smaller target (`decode_image`), when it is a
    DCT-scaled decode no smaller than the target. `format` is what the bytes were (jpeg, png,
    webp, gif, bmp); `content_hash` is the sha256 of the encoded bytes, which decide the pixels
    (for a given target): the same file hashes equal whether a data URL or a fetch carried it,
    at a hundredth of the cost of hashing a photo's pixels; `byte_size` is the size of the
    encoded image. `source` is the file itself where a decoder makes exactly these pixels of
    it (see `SourceFile`), for an engine that may send it on as it came.
    """

    pixels: Pixels
    width: int
    height: int
    format: str
    content_hash: str
    byte_size: int
    source: SourceFile | None = None


def decode_image(
    data: bytes, limits: ImageLimits, target: tuple[int, int] | None = None, digest: str | None = None
) -> DecodedImage:
    """Validate and decode one encoded image. CPU-bound: call it off the event loop.

    `target` is the upright (width, height) the image will be resized to, when known: a JPEG is
    then decoded at the smallest DCT scale that still covers it (see `media.draft`). `digest` is
    the data's sha256 hex digest when the caller already has it.

    Raises ImageFileExceedsMaxSize, InvalidImageFormat (unsupported, truncated or corrupt),
    ImageExceedsMaxResolution (refused from the header, before any pixel is decoded) and
    InvalidImageSize (a side shorter than `limits.min_side`).
    """
    if len(data) > limits.max_bytes:
        raise ImageFileExceedsMaxSize(
            f"The image is {len(data)} bytes; the limit is {limits.max_bytes} bytes."
        )
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # A process-wide Pillow switch someone turned on: truncated uploads would pass silently.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False in Loupe")
    fmt = sniff_format(data)
    if fmt == "jpeg" and data.count(_JPEG_START_OF_SCAN) > MAX_JPEG_SCANS:
        raise InvalidImageFormat(
            f"The JPEG has more than {MAX_JPEG_SCANS} scans; re-encode it with a standard encoder."
        )
    with _pillow_failures_as_invalid(fmt):
        image: Image.Image = _open_header(data, fmt)
        check_dimensions(image.width, image.height, limits)
        orientation = exif_orientation(image)
        quarter_turn = orientation in QUARTER_TURNS
        full = (image.height, image.width) if quarter_turn else image.size
        covered = draft(image, target, quarter_turn) if target is not None else None
        source = _source(data, fmt, image, orientation)
        rgb: Pixels
        if fmt == "jpeg" and image.mode == "RGB" and covered is None:
            rgb = decode_jpeg_rgb(data, orientation)
        else:
            image.load()
            if covered is not None and covered != image.size:
                image = image.crop((0, 0, *covered))
            rgb = _detached(to_rgb(_upright(image, orientation)))
    return DecodedImage(
        pixels=rgb,
        width=full[0],
        height=full[1],
        format=fmt,
        content_hash=digest or hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
        source=source,
    )


def _source(data: bytes, fmt: str, image: Image.Image, orientation: int) -> SourceFile | None:
    """The file, where decoding it is all it takes to get the upright RGB picture: no turn to
    apply, no mode to convert, no transparency to flatten, no frames after the first."""
    if fmt not in _FORWARDABLE_FORMATS or orientation != 1 or image.mode != "RGB":
        return None
    if "transparency" in image.info or getattr(image, "is_animated", False):
        return None
    if fmt == "png" and _PNG_EXIF in data:
        # An eXIf chunk after the pixel data may turn the picture for a decoder that reads it
        # (Pillow's `exif_transpose`, as vLLM calls it); Loupe reads the chunks before only.
        return None
    return SourceFile(data, fmt)


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 to 8) from what the header holds, decoding no pixel.

    Pillow's `getexif` on a PNG decodes the whole image to look for an eXIf chunk after the
    pixel data; Loupe reads only the chunks before it, in the pre-flight estimate and in the
    decode alike, so both agree on the upright size.
    """
    if image.format == "PNG":
        raw = image.info.get("exif")
        if not raw:
            return 1
        exif = Image.Exif()
        exif.load(raw)
        return _valid_orientation(exif.get(ExifTags.Base.Orientation, 1))
    return _valid_orientation(image.getexif().get(ExifTags.Base.Orientation, 1))


def _valid_orientation(value: object) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Refuse a declared size before any pixel is allocated."""
    if width > limits.max_side or height > limits.max_side:
        raise ImageExceedsMaxResolution(
            f"The image is {width}x{height}; no side may exceed {limits.max_side} pixels."
        )
    if width * height > limits.max_pixels:
        raise ImageExceedsMaxResolution(
            f"The image is {width}x{height} ({width * height} pixels); "
            f"the limit is {limits.max_pixels} pixels."
        )
    if width < limits.min_side or height < limits.min_side:
        raise InvalidImageSize(
            f"The image is {width}x{height}; each side must be at least {limits.min_side} pixels."
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, compositing transparency on white."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_DEPTH_MODES:
        image = _to_eight_bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _open_header(data: bytes, fmt: str) -> ImageFile.ImageFile:
    """Parse only the header, turning Pillow's decompression-bomb alarms into refusals."""
    try:
        with _WARNINGS_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageExceedsMaxResolution(
            "The image declares more pixels than Loupe will ever decode."
        ) from None


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    transpose = _ORIENTATIONS.get(orientation)
    return image.transpose(transpose) if transpose is not None else image


def _detached(image: Image.Image) -> Image.Image:
    # An animation's ImageFile keeps its file open to decode later frames: keep the first only.
    # A still image's pixels are all loaded; copying them to drop the file would cost more.
    return image.copy() if getattr(image, "is_animated", False) else image


def _to_eight_bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image)
    if image.mode != "F":
        # 16-bit samples (PNG, the only accepted source of these modes): keep the high byte.
        values = values.astype(np.uint32) >> 8
    return Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")


@contextmanager
def _pillow_failures_as_invalid(fmt: str) -> Iterator[None]:
    try:
        yield
    except UnidentifiedImageError:
        raise InvalidImageFormat(
            f"The data starts like {fmt.upper()} but is not a readable {fmt.upper()} image."
        ) from None
    except _PILLOW_FAILURES as exc:
        raise InvalidImageFormat(
            f"The {fmt.upper()} image is truncated or corrupt ({exc})."
        ) from None
