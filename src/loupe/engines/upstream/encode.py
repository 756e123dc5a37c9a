"""Prepared images as the data URLs sent upstream: lossless PNG of exactly the pixels Loupe planned.

PNG, not JPEG at quality 95: the upstream must see the very pixels Loupe sized and counted, so
that its processor makes the same image tokens and the model gives the same answer as Loupe's
embedded engine would. JPEG would be about 3x smaller but would shift pixels by its own
quantisation; on a LAN link between Loupe and its GPU cluster the extra bytes cost
milliseconds, a changed answer costs correctness. Compression level 1 keeps encoding fast
(most of PNG's cost is its deflate effort, not its size).
"""

from __future__ import annotations

import base64
import io

from loupe.domain import PreparedImage

__all__ = ["PNG_COMPRESS_LEVEL", "data_url"]

PNG_COMPRESS_LEVEL = 1


def data_url(image: PreparedImage) -> str:
    """`data:image/png;base64,...` of the image's pixels (RGB); CPU-bound, so call it off the loop."""
    pixels = image.pixels if image.pixels.mode == "RGB" else image.pixels.convert("RGB")
    buf = io.BytesIO()
    pixels.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
