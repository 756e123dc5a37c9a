"""Parse `data:image/<fmt>;base64,<payload>` URLs (and videos' `data:video/...`) into bytes."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import pybase64

from loupe.errors import ImageFileExceedsMaxSize, InvalidImageFormat, LoupeError

_WHITESPACE = b" \t\r\n\f\v"
_EXPECTED = "Expected `data:image/<format>;base64,<payload>`."


def is_data_url(url: str) -> bool:
    return url[:5].lower() == "data:"


@dataclass(frozen=True, slots=True)
class PayloadKind:
    """What a data URL may declare (media type prefixes) and the errors it raises otherwise."""

    noun: str
    article: str
    media_types: tuple[str, ...]
    expected: str
    invalid: type[LoupeError]
    too_large: type[LoupeError]


IMAGE_PAYLOAD = PayloadKind("image", "an image", ("image/",), _EXPECTED, InvalidImageFormat, ImageFileExceedsMaxSize)


def decode_data_url(url: str, *, max_bytes: int, kind: PayloadKind = IMAGE_PAYLOAD) -> bytes:
    """Return the payload of a data URL: by default an image's.

    The declared MIME type only has to start as `kind` allows (`image/...`); the real format is
    decided later from the bytes. Raises `kind.invalid` (InvalidImageFormat) for another media
    type, a missing `;base64` or bad base64, and `kind.too_large` (ImageFileExceedsMaxSize),
    before decoding, when the payload is too large.
    """
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise kind.invalid(f"The data URL has no `,` before its payload. {kind.expected}")
    media_type, *params = (part.strip().lower() for part in header.split(";"))
    if not media_type.startswith(kind.media_types):
        shown = media_type or "no media type"
        raise kind.invalid(f"The data URL holds {shown}, not {kind.article}. {kind.expected}")
    if "base64" not in params:
        raise kind.invalid(f"The data URL is not base64-encoded. {kind.expected}")
    try:
        encoded = payload.encode("ascii")
    except UnicodeEncodeError:
        raise kind.invalid("The data URL payload is not valid base64.") from None
    too_large = f"The {kind.noun} is larger than the limit of {max_bytes} bytes."
    if len(encoded) // 4 * 3 > max_bytes + 2:
        encoded = encoded.translate(None, _WHITESPACE)  # line breaks make it look larger than it is
        if len(encoded) // 4 * 3 > max_bytes + 2:
            raise kind.too_large(too_large)
    data = _decoded(encoded, kind.invalid)
    if not data:
        raise kind.invalid("The data URL payload is empty.")
    if len(data) > max_bytes:
        raise kind.too_large(too_large)
    return data


def _decoded(encoded: bytes, invalid: type[LoupeError]) -> bytes:
    """Strict base64 (the alphabet, padding only at the end), with SIMD; whitespace (base64
    wrapped in lines) is stripped only when the payload has some."""
    try:
        return pybase64.b64decode(encoded, validate=True)
    except binascii.Error:
        pass
    try:
        return pybase64.b64decode(encoded.translate(None, _WHITESPACE), validate=True)
    except binascii.Error:
        raise invalid("The data URL payload is not valid base64.") from None
