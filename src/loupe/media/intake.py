"""The public entry of media: turn a request's image references into decoded images.

Two steps, so that a caller can plan from the headers before any pixel is decoded: `fetch`
gets each image's bytes and reads its header; `decode` decodes them, each for the size it will
be resized to (a JPEG headed for a much smaller size decodes at a fraction of the cost).
Chat clients resend a conversation's images with every turn: an optional cache of decoded
images, keyed by the file's sha256 and the target, spares the decode of a file seen before.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from loupe.domain import ImageRef
from loupe.errors import ImageError, ImageUrlForbidden
from loupe.lru import ByteLRU
from loupe.media.data_url import decode_data_url, is_data_url
from loupe.media.decode import DecodedImage, decode_image
from loupe.media.each import each
from loupe.media.fetch import ImageFetcher
from loupe.media.limits import ImageLimits
from loupe.media.pixels import pixel_bytes
from loupe.media.probe import ImageHeader, probe_image

@dataclass(frozen=True, slots=True)
class EncodedImage:
    """An image's bytes, their sha256, and what the header says (format, upright size)."""

    data: bytes
    header: ImageHeader
    digest: str


DecodedCache = ByteLRU[tuple[str, tuple[int, int] | None], DecodedImage]
"""Decoded images by (file sha256, target). Validation that depends on limits happens on the
header, at every fetch, so one cache may serve intakes with different limits."""


class MediaIntake:
    """Loads the images of one request concurrently; decoding runs off the event loop.

    Without a `fetcher`, http(s) image URLs are refused and only data URLs are accepted. One
    fetcher (one transport) may serve several intakes, e.g. one per model with its own limits;
    the fetch rules (timeouts, redirects, allowed hosts) are the fetcher's.
    `executor` runs the CPU-bound decoding; None means the event loop's default executor.
    `cache` keeps decoded images for later requests; it is used from the event loop only.
    Construction does no I/O.
    """

    def __init__(
        self,
        limits: ImageLimits,
        *,
        fetcher: ImageFetcher | None = None,
        executor: Executor | None = None,
        cache: DecodedCache | None = None,
    ) -> None:
        self._limits = limits
        self._fetcher = fetcher
        self._executor = executor
        self._cache = cache

    async def load(self, refs: Sequence[ImageRef]) -> list[DecodedImage]:
        """Fetch, validate and decode every image at its full size, in the order given.

        Raises the first ImageError met, located at its ImageRef's `param`; the other images
        of the request are then cancelled.
        """
        encoded = await self.fetch(refs)
        return await self.decode(refs, encoded, [None] * len(refs))

    async def fetch(self, refs: Sequence[ImageRef]) -> list[EncodedImage]:
        """Every image's bytes and header, in the order given; no pixel is decoded. Raises as
        `load` does, for what the bytes and the header can show."""
        return await each(refs, refs, lambda ref, _: self._fetch_one(ref), ImageError)

    async def decode(
        self,
        refs: Sequence[ImageRef],
        encoded: Sequence[EncodedImage],
        targets: Sequence[tuple[int, int] | None],
    ) -> list[DecodedImage]:
        """Decode fetched images; `targets` holds the upright size each will be resized to, or
        None for a full decode. Raises as `load` does."""
        pairs = list(zip(encoded, targets, strict=True))
        return await each(refs, pairs, self._decode_one, ImageError)

    async def probe(self, refs: Sequence[ImageRef]) -> list[ImageHeader]:
        """Like `load`, but read only each image's header: format and upright size."""
        return [image.header for image in await self.fetch(refs)]

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()

    async def _fetch_one(self, ref: ImageRef) -> EncodedImage:
        loop = asyncio.get_running_loop()
        if is_data_url(ref.url):
            return await loop.run_in_executor(self._executor, self._read_data_url, ref.url)
        data = await self._fetch(ref.url)
        return await loop.run_in_executor(self._executor, self._read, data)

    def _read_data_url(self, url: str) -> EncodedImage:
        return self._read(decode_data_url(url, max_bytes=self._limits.max_bytes))

    def _read(self, data: bytes) -> EncodedImage:
        return EncodedImage(data, probe_image(data, self._limits), hashlib.sha256(data).hexdigest())

    async def _decode_one(self, ref: ImageRef, item: tuple[EncodedImage, tuple[int, int] | None]) -> DecodedImage:
        (image, target), loop = item, asyncio.get_running_loop()
        key = (image.digest, target)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None:
            return cached
        decoded = await loop.run_in_executor(self._executor, decode_image, image.data, self._limits, target, image.digest)
        if self._cache is not None:
            # The pixels, and a still image keeps its file's bytes.
            self._cache.put(key, decoded, pixel_bytes(decoded.pixels) + len(image.data))
        return decoded

    async def _fetch(self, url: str) -> bytes:
        if self._fetcher is None:
            raise ImageUrlForbidden(
                "This server does not fetch image URLs; send the image as a base64 data URL."
            )
        return await self._fetcher.fetch(url, max_bytes=self._limits.max_bytes)
