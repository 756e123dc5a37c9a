"""Which video container some bytes are, from their magic numbers, never from a MIME type.

The container decides the one FFmpeg demuxer Loupe lets open the bytes: FFmpeg never probes
them itself, so a playlist or concat file (which makes FFmpeg open other files and URLs) is
never parsed, whatever a client declares.
"""

from __future__ import annotations

from loupe.errors import InvalidVideoFormat

# Loupe's container name -> the FFmpeg demuxer that opens it (None: Pillow reads it).
DEMUXERS: dict[str, str | None] = {
    "mp4": "mov",
    "mov": "mov",
    "webm": "matroska",
    "mkv": "matroska",
    "gif": "gif",
    "webp": None,
}

ACCEPTED = "MP4, MOV, WebM, Matroska, animated GIF and animated WebP"

CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "gif", "prores"})
"""Video codecs Loupe decodes (FFmpeg's names); a stream in another codec is refused."""

_QUICKTIME_BRAND = b"qt  "
_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"})
# Atoms an old QuickTime file may open with, before (or instead of) `ftyp`.
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip"})
_EBML = b"\x1a\x45\xdf\xa3"
_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"BM", "a BMP image"),
)


def sniff_container(data: bytes) -> str:
    """Loupe's name for the container of `data` (a key of DEMUXERS).

    Raises InvalidVideoFormat for anything else, naming still images (send those as
    `image_url`) and known containers Loupe does not take.
    """
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _IMAGE_BRANDS:
            raise InvalidVideoFormat("The data is a HEIF/AVIF image, not a video; send images as image_url parts.")
        return "mov" if brand == _QUICKTIME_BRAND else "mp4"
    if data[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if data.startswith(_EBML):
        return "webm" if b"webm" in data[:64] else "mkv"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        if data[12:16] == b"VP8X" and len(data) > 20 and data[20] & 0x02:
            return "webp"
        raise InvalidVideoFormat("The data is a still WEBP image, not a video; send images as image_url parts.")
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        raise InvalidVideoFormat(f"AVI videos are not supported; send one of {ACCEPTED}.")
    for prefix, name in _IMAGES:
        if data.startswith(prefix):
            raise InvalidVideoFormat(f"The data is {name}, not a video; send images as image_url parts.")
    raise InvalidVideoFormat(f"The data is not a video in a supported format (accepted: {ACCEPTED}).")
