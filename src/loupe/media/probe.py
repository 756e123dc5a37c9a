"""An image's format and upright size from its header alone: the pre-flight estimate's input."""

from __future__ import annotations

from dataclasses import dataclass

from loupe.errors import ImageFileExceedsMaxSize, InvalidImageFormat
from loupe.media.decode import QUARTER_TURNS, _open_header, _pillow_failures_as_invalid, check_dimensions, exif_orientation
from loupe.media.formats import sniff_format
from loupe.media.limits import ImageLimits


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: str
    width: int
    height: int
    byte_size: int


def probe_image(data: bytes, limits: ImageLimits) -> ImageHeader:
    """Read the format and the size the image has once upright, decoding no pixel.

    Raises the same errors as `decode_image` for what a header can show (format, size, bytes);
    a file corrupt past its header is only found by decoding it, except a JPEG cut short (no
    end-of-image marker after its last scan), which decoding refuses too and is refused here.
    """
    if len(data) > limits.max_bytes:
        raise ImageFileExceedsMaxSize(
            f"The image is {len(data)} bytes; the limit is {limits.max_bytes} bytes."
        )
    fmt = sniff_format(data)
    if fmt == "jpeg" and not jpeg_is_complete(data):
        raise InvalidImageFormat("The JPEG image is truncated or corrupt (it ends before its end-of-image marker).")
    with _pillow_failures_as_invalid(fmt):
        image = _open_header(data, fmt)
        width, height = image.size
        if exif_orientation(image) in QUARTER_TURNS:
            width, height = height, width
        check_dimensions(width, height, limits)
    return ImageHeader(format=fmt, width=width, height=height, byte_size=len(data))


def jpeg_is_complete(data: bytes) -> bool:
    """Whether an end-of-image marker follows the last start-of-scan: a file cut short (an upload
    stopped midway) has none. A scan's data never holds 0xFFD9 (a 0xFF byte in it is stuffed)."""
    last_scan = data.rfind(b"\xff\xda")
    return last_scan >= 0 and data.find(b"\xff\xd9", last_scan) >= 0
