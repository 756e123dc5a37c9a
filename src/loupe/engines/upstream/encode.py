"""Prepared images (and videos' sampled frames) as the data URLs sent upstream: lossless,
exactly the pixels Loupe planned.

An image the model sees at its own size, whose file any decoder turns into exactly the pixels
Loupe decoded (a still, upright RGB JPEG, PNG or WebP: `SourceFile`), goes as the client's file,
unchanged: the upstream decodes the same pixels, and neither side pays for a re-encoding or for
the larger body of a lossless one (measured in docs/benchmarks.md). Every other image is
re-encoded from Loupe's pixels, as follows.

The image is resized to its planned size here, with Pillow's bicubic: the filter the upstream's
own processor would use, so it finds the size already right and keeps the pixels as they are.

Lossless, not JPEG: the upstream must see the very pixels Loupe sized and counted, so that its
processor makes the same image tokens and the model sees the picture Loupe's embedded engine
would (to within the rounding of the two bicubic resizes); JPEG would shift them by its own
quantisation. Uncompressed BMP by default: it costs a copy to write and to read, where PNG's
filtering and deflate cost tens of milliseconds on each side for a photo (measured in
docs/benchmarks.md), work the gateway and vLLM's single-threaded API server would do for every
image. The price is bytes: 3 per pixel, about 4 MB of base64 per megapixel, which a LAN to a
GPU cluster carries in milliseconds. `png` (level 1, a third of the size or less) is there for
thin links.
"""

from __future__ import annotations

import io
import threading
from typing import Literal

import pybase64
from PIL import Image

from loupe.domain import PreparedImage, PreparedVideo
from loupe.lru import ByteLRU

__all__ = ["PNG_COMPRESS_LEVEL", "EncodedImages", "ImageFormat", "data_url", "media_url", "video_url"]

ImageFormat = Literal["bmp", "png"]
PNG_COMPRESS_LEVEL = 1


def data_url(image: PreparedImage, fmt: ImageFormat = "bmp") -> str:
    """`data:image/{fmt};base64,...` of the image's pixels (RGB), or of the client's own file
    where it holds exactly those pixels at the planned size; CPU-bound, so call it off the loop."""
    if image.source is not None and not image.resized:
        return f"data:image/{image.source.format};base64," + pybase64.b64encode(image.source.data).decode("ascii")
    pixels = image.pixels if isinstance(image.pixels, Image.Image) else Image.fromarray(image.pixels)
    pixels = pixels if pixels.mode == "RGB" else pixels.convert("RGB")
    if pixels.size != (image.width, image.height):
        pixels = pixels.resize((image.width, image.height), Image.Resampling.BICUBIC)
    return f"data:image/{fmt};base64," + _encoded(pixels, fmt)


def video_url(video: PreparedVideo, fmt: ImageFormat = "bmp") -> str:
    """`data:video/jpeg;base64,<frame>,<frame>,...`: vLLM's form of a video as its frames (see
    `video`), each an image file of the sampled frame at the planned size, in `fmt` (vLLM's
    frame decoder reads any image file, whatever the label says); CPU-bound, call it off the loop."""
    return "data:video/jpeg;base64," + ",".join(_encoded(Image.fromarray(rgb), fmt) for rgb in video.pixels)


def media_url(part: PreparedImage | PreparedVideo, fmt: ImageFormat = "bmp") -> str:
    """`data_url` of an image, `video_url` of a video."""
    return video_url(part, fmt) if isinstance(part, PreparedVideo) else data_url(part, fmt)


def _encoded(pixels: Image.Image, fmt: ImageFormat) -> str:
    buf = io.BytesIO()
    if fmt == "png":
        pixels.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        pixels.save(buf, format="BMP")
    return pybase64.b64encode(buf.getbuffer()).decode("ascii")


class EncodedImages:
    """`media_url`, remembered by file and size: chat clients resend a conversation's images and
    videos with every turn, and resizing and encoding are the gateway's largest cost per image.
    Safe to call from several threads (prompts are prepared on worker threads); `capacity` bounds
    the URLs' bytes.
    """

    def __init__(self, capacity: int, fmt: ImageFormat = "bmp") -> None:
        self._format: ImageFormat = fmt
        self._lock = threading.Lock()
        self._urls: ByteLRU[tuple[str, int, int], str] = ByteLRU(capacity)

    def __call__(self, part: PreparedImage | PreparedVideo) -> str:
        # The file's hash and the planned size decide the pixels (media.decode_image); a video's
        # hash covers its file, sampled frames and size (service.videos).
        if isinstance(part, PreparedVideo):
            key = (part.content_hash, 0, 0)
        else:
            key = (part.content_hash, part.width, part.height)
        with self._lock:
            found = self._urls.get(key)
        if found is None:
            found = media_url(part, self._format)
            with self._lock:
                self._urls.put(key, found, len(found))
        return found
