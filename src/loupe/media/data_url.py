"""Parse `data:image/<fmt>;base64,<payload>` URLs into bytes, refusing what is not one."""

from __future__ import annotations

import binascii

import pybase64

from loupe.errors import ImageFileExceedsMaxSize, InvalidImageFormat

_WHITESPACE = b" \t\r\n\f\v"
_EXPECTED = "Expected `data:image/<format>;base64,<payload>`."


def is_data_url(url: str) -> bool:
    return url[:5].lower() == "data:"


def decode_data_url(url: str, *, max_bytes: int) -> bytes:
    """Return the payload of an image data URL.

    The declared MIME type only has to be `image/...`; the real format is decided later from
    the bytes. Raises InvalidImageFormat for another media type, a missing `;base64` or bad
    base64, and ImageFileExceedsMaxSize, before decoding, when the payload is too large.
    """
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InvalidImageFormat(f"The data URL has no `,` before its payload. {_EXPECTED}")
    media_type, *params = (part.strip().lower() for part in header.split(";"))
    if not media_type.startswith("image/"):
        shown = media_type or "no media type"
        raise InvalidImageFormat(f"The data URL holds {shown}, not an image. {_EXPECTED}")
    if "base64" not in params:
        raise InvalidImageFormat(f"The data URL is not base64-encoded. {_EXPECTED}")
    try:
        encoded = payload.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidImageFormat("The data URL payload is not valid base64.") from None
    if len(encoded) // 4 * 3 > max_bytes + 2:
        encoded = encoded.translate(None, _WHITESPACE)  # line breaks make it look larger than it is
        if len(encoded) // 4 * 3 > max_bytes + 2:
            raise ImageFileExceedsMaxSize(f"The image is larger than the limit of {max_bytes} bytes.")
    data = _decoded(encoded)
    if not data:
        raise InvalidImageFormat("The data URL payload is empty.")
    if len(data) > max_bytes:
        raise ImageFileExceedsMaxSize(f"The image is larger than the limit of {max_bytes} bytes.")
    return data


def _decoded(encoded: bytes) -> bytes:
    """Strict base64 (the alphabet, padding only at the end), with SIMD; whitespace (base64
    wrapped in lines) is stripped only when the payload has some."""
    try:
        return pybase64.b64decode(encoded, validate=True)
    except binascii.Error:
        pass
    try:
        return pybase64.b64decode(encoded.translate(None, _WHITESPACE), validate=True)
    except binascii.Error:
        raise InvalidImageFormat("The data URL payload is not valid base64.") from None
