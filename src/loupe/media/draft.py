"""Decode a JPEG at 1/2, 1/4 or 1/8 scale when the model will see it at most that large.

libjpeg can scale during the inverse DCT for a fraction of a full decode's cost (Pillow's
`Image.draft`). Loupe asks for it only when the size the image will be resized to is at most
half the source on both sides, and at the smallest scale still at least that size, so the
resize that follows always shrinks: the model sees a downscale of a downscale, never an
enlargement. The drafted pixels are not those of a full decode resized in one step; the cache
key and the tests compare what comes after (the resized image), not the decode.
"""

from __future__ import annotations

import math

from PIL import Image

__all__ = ["JPEG_SCALES", "draft", "draft_scale"]

JPEG_SCALES = (8, 4, 2)
"""The DCT scales libjpeg decodes at, largest first."""


def draft_scale(source: tuple[int, int], target: tuple[int, int]) -> int:
    """The DCT scale for (width, height) `target`: 1 unless it is at most half of `source` on
    both sides, else the largest scale that keeps both sides at least the target."""
    fits = min(source[0] // max(target[0], 1), source[1] // max(target[1], 1))
    return next((s for s in JPEG_SCALES if fits >= s), 1)


def draft(image: Image.Image, target: tuple[int, int], quarter_turn: bool) -> tuple[int, int] | None:
    """Ask for a DCT-scaled decode of a JPEG whose pixels are not loaded yet.

    `target` is the upright (width, height) it will be resized to; `quarter_turn` says whether
    its EXIF orientation swaps the stored sides. Returns the stored-orientation size the decoded
    pixels cover entirely, to crop to once loaded (libjpeg rounds a scaled side up, and the last
    row or column then covers only part of a pixel), or None when no draft applies.
    """
    if image.format != "JPEG":
        return None
    stored = (target[1], target[0]) if quarter_turn else target
    if draft_scale(image.size, stored) == 1:
        return None
    drafted = image.draft("RGB", stored)
    if drafted is None:
        return None
    _, (_, _, width, height) = drafted
    return math.floor(width), math.floor(height)
