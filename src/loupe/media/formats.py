"""Which image format some bytes are, decided from their magic numbers, never from a MIME type."""

from __future__ import annotations

from loupe.errors import InvalidImageFormat

# Accepted formats: Loupe's name, and the name of the Pillow plugin that must open the bytes.
PILLOW_FORMATS: dict[str, str] = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
}

ACCEPTED = ", ".join(name.upper() for name in PILLOW_FORMATS)

# Formats recognised only to name them in the refusal.
_REFUSED_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"%!PS", "PostScript"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "HDR"),
)

_ISOBMFF_BRANDS: dict[bytes, str] = {
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"heic": "HEIC",
    b"heix": "HEIC",
    b"heim": "HEIC",
    b"heis": "HEIC",
    b"hevc": "HEIC",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
}


def sniff_format(data: bytes) -> str:
    """Return the accepted format of `data` ("jpeg", "png", "webp", "gif", "bmp").

    Raises InvalidImageFormat naming the detected format when it is a known, refused one.
    """
    accepted = _accepted_format(data)
    if accepted is not None:
        return accepted
    refused = _refused_format(data)
    if refused is None:
        raise InvalidImageFormat(
            f"The data is not an image in a supported format (accepted: {ACCEPTED})."
        )
    raise InvalidImageFormat(
        f"{refused} images are not supported; send one of {ACCEPTED}."
    )


def _accepted_format(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _refused_format(data: bytes) -> str | None:
    for prefix, name in _REFUSED_PREFIXES:
        if data.startswith(prefix):
            return name
    if data[4:8] == b"ftyp":
        return _ISOBMFF_BRANDS.get(data[8:12], "ISO media (not an accepted image)")
    if len(data) > 2 and data[0:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return "PNM (PBM/PGM/PPM/PAM)"
    head = data[:512].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return "SVG"
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None
