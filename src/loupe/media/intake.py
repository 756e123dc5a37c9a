"""The public entry of media: turn a request's image references into decoded images."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import TypeVar

from loupe.domain import ImageRef
from loupe.errors import ImageError, ImageUrlForbidden
from loupe.media.data_url import decode_data_url, is_data_url
from loupe.media.decode import DecodedImage, decode_image
from loupe.media.fetch import ImageFetcher
from loupe.media.limits import ImageLimits
from loupe.media.probe import ImageHeader, probe_image

T = TypeVar("T")


class MediaIntake:
    """Loads the images of one request concurrently; decoding runs off the event loop.

    Without a `fetcher`, http(s) image URLs are refused and only data URLs are accepted. One
    fetcher (one transport) may serve several intakes, e.g. one per model with its own limits;
    the fetch rules (timeouts, redirects, allowed hosts) are the fetcher's.
    `executor` runs the CPU-bound decoding; None means the event loop's default executor.
    Construction does no I/O.
    """

    def __init__(
        self,
        limits: ImageLimits,
        *,
        fetcher: ImageFetcher | None = None,
        executor: Executor | None = None,
    ) -> None:
        self._limits = limits
        self._fetcher = fetcher
        self._executor = executor

    async def load(self, refs: Sequence[ImageRef]) -> list[DecodedImage]:
        """Fetch, validate and decode every image, in the order given.

        Raises the first ImageError met, located at its ImageRef's `param`; the other images
        of the request are then cancelled.
        """
        return await self._each(refs, self._load_one)

    async def probe(self, refs: Sequence[ImageRef]) -> list[ImageHeader]:
        """Like `load`, but read only each image's header: format and upright size."""
        return await self._each(refs, self._probe_one)

    async def _each(
        self, refs: Sequence[ImageRef], one: Callable[[ImageRef], Awaitable[T]]
    ) -> list[T]:
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(ref)) for ref in refs]  # type: ignore[arg-type]
        except* ImageError as failures:
            raise failures.exceptions[0] from None
        return [task.result() for task in tasks]

    async def aclose(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()

    async def _load_one(self, ref: ImageRef) -> DecodedImage:
        loop = asyncio.get_running_loop()
        try:
            if is_data_url(ref.url):
                return await loop.run_in_executor(self._executor, self._decode_data_url, ref.url)
            data = await self._fetch(ref.url)
            return await loop.run_in_executor(self._executor, decode_image, data, self._limits)
        except ImageError as exc:
            raise exc.with_param(ref.param)

    async def _probe_one(self, ref: ImageRef) -> ImageHeader:
        try:
            if is_data_url(ref.url):
                data = decode_data_url(ref.url, max_bytes=self._limits.max_bytes)
            else:
                data = await self._fetch(ref.url)
            return probe_image(data, self._limits)
        except ImageError as exc:
            raise exc.with_param(ref.param)

    def _decode_data_url(self, url: str) -> DecodedImage:
        return decode_image(decode_data_url(url, max_bytes=self._limits.max_bytes), self._limits)

    async def _fetch(self, url: str) -> bytes:
        if self._fetcher is None:
            raise ImageUrlForbidden(
                "This server does not fetch image URLs; send the image as a base64 data URL."
            )
        return await self._fetcher.fetch(url, max_bytes=self._limits.max_bytes)
