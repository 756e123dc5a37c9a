from __future__ import annotations

from pathlib import Path

import pytest

from loupe.errors import InvalidImageFormat
from loupe.media.formats import sniff_format


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hopper.jpg", "jpeg"),
        ("hopper.png", "png"),
        ("animated.png", "png"),
        ("hopper.webp", "webp"),
        ("hopper.gif", "gif"),
        ("hopper.bmp", "bmp"),
    ],
)
def test_accepted_formats_come_from_the_bytes(images: Path, name: str, expected: str) -> None:
    assert sniff_format((images / "pillow" / name).read_bytes()) == expected


@pytest.mark.parametrize(
    ("name", "named"),
    [
        ("hopper.tif", "TIFF"),
        ("hopper.psd", "PSD"),
        ("hopper.avif", "AVIF"),
        ("hopper_16bit.pgm", "PNM"),
    ],
)
def test_refused_formats_are_named(images: Path, name: str, named: str) -> None:
    with pytest.raises(InvalidImageFormat, match=named):
        sniff_format((images / "pillow" / name).read_bytes())


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"  <svg></svg>", "SVG"),
        (b"%PDF-1.7\n", "PDF"),
        (b"\x00\x00\x01\x00\x01\x00", "ICO"),
        (b"P6\n1 1\n255\n\x00\x00\x00", "PNM"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b"\x00\x00\x00\x1cftypheic", "HEIC"),
    ],
)
def test_other_refused_formats(data: bytes, named: str) -> None:
    with pytest.raises(InvalidImageFormat, match=named):
        sniff_format(data)


@pytest.mark.parametrize("data", [b"", b"hello, world", b"\x00" * 32])
def test_unknown_bytes(data: bytes) -> None:
    with pytest.raises(InvalidImageFormat, match="not an image in a supported format"):
        sniff_format(data)
