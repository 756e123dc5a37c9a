"""Prepared images (and videos' frames) as the data URLs sent upstream: lossless PNG of exactly
the pixels Loupe planned.

The image is resized to its planned size here, with Pillow's bicubic: the filter the upstream's
own processor would use, so it finds the size already right and keeps the pixels as they are.

PNG, not JPEG at quality 95: the upstream must see the very pixels Loupe sized and counted, so
that its processor makes the same image tokens and the model sees the picture Loupe's embedded
engine would (to within the rounding of the two bicubic resizes). JPEG would be about 3x
smaller but would shift pixels by its own quantisation; on a LAN link between Loupe and its GPU
cluster the extra bytes cost milliseconds, a changed answer costs correctness. Compression
level 1 keeps encoding fast (most of PNG's cost is its deflate effort, not its size).
"""

from __future__ import annotations

import base64
import io
import threading

from PIL import Image

from loupe.domain import PreparedImage, PreparedVideo
from loupe.lru import ByteLRU

__all__ = ["PNG_COMPRESS_LEVEL", "EncodedImages", "data_url", "media_url", "video_url"]

PNG_COMPRESS_LEVEL = 1


def media_url(part: PreparedImage | PreparedVideo) -> str:
    """`data_url` of an image, `video_url` of a video."""
    return video_url(part) if isinstance(part, PreparedVideo) else data_url(part)


def data_url(image: PreparedImage) -> str:
    """`data:image/png;base64,...` of the image's pixels (RGB); CPU-bound, so call it off the loop."""
    pixels = image.pixels if isinstance(image.pixels, Image.Image) else Image.fromarray(image.pixels)
    pixels = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
    if pixels.size != (image.width, image.height):
        pixels = pixels.resize((image.width, image.height), Image.Resampling.BICUBIC)
    return "data:image/png;base64," + _png(pixels)


def video_url(video: PreparedVideo) -> str:
    """`data:video/jpeg;base64,<frame>,<frame>,...`: vLLM's form of a video as its frames (see
    `video`), each a PNG of the sampled frame at the planned size; CPU-bound, call it off the loop."""
    return "data:video/jpeg;base64," + ",".join(_png(Image.fromarray(rgb)) for rgb in video.pixels)


def _png(pixels: Image.Image) -> str:
    buf = io.BytesIO()
    pixels.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return base64.b64encode(buf.getvalue()).decode("ascii")


class EncodedImages:
    """`data_url` (and `video_url` for videos), remembered by file and size: chat clients
    resend a conversation's images and videos with every turn, and the PNG encoding is the
    gateway's largest cost per image. Safe to call from several threads (prompts are prepared on
    worker threads); `capacity` bounds the URLs' bytes.
    """

    def __init__(self, capacity: int) -> None:
        self._lock = threading.Lock()
        self._urls: ByteLRU[tuple[str, int, int], str] = ByteLRU(capacity)

    def __call__(self, part: PreparedImage | PreparedVideo) -> str:
        # The file's hash and the planned size decide the pixels (media.decode_image); a
        # video's hash covers its file, frames and size (service.videos).
        if isinstance(part, PreparedVideo):
            key = (part.content_hash, 0, 0)
        else:
            key = (part.content_hash, part.width, part.height)
        with self._lock:
            found = self._urls.get(key)
        if found is None:
            found = media_url(part)
            with self._lock:
                self._urls.put(key, found, len(found))
        return found
