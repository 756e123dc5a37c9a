"""Image intake for a request: fetch or decode every image, validate it, size it for its detail."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from loupe.domain import Detail, ImageRef, ModelCard, PreparedImage
from loupe.media.data_url import decode_data_url, is_data_url
from loupe.media.decode import DecodedImage, decode_image
from loupe.media.limits import ImageLimits
from loupe.settings import Settings


def limits_for(settings: Settings) -> dict[str, ImageLimits]:
    """Per-model image limits from the settings (the fetch policy is shared by all models)."""
    fetch = settings.fetch
    return {
        m.id: ImageLimits(
            max_bytes=m.images.max_image_bytes,
            max_pixels=m.images.max_image_pixels,
            max_side=m.images.max_image_side,
            min_side=m.images.min_image_side,
            connect_timeout=fetch.connect_timeout_s,
            read_timeout=fetch.read_timeout_s,
            total_timeout=fetch.total_timeout_s,
            max_redirects=fetch.max_redirects,
            allowed_domains=fetch.allowed_domains,
            allowed_private_hosts=fetch.allow_media_hosts,
        )
        for m in settings.models
    }


class ImageService:
    """The service's `ImagePipeline`: one request's images, concurrently, off the event loop."""

    def __init__(self, limits: Mapping[str, ImageLimits]) -> None:
        self._limits = dict(limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageService:
        return cls(limits_for(settings))

    async def prepare(self, card: ModelCard, refs: Sequence[ImageRef]) -> list[PreparedImage]:
        limits = self._limits.get(card.id, ImageLimits())
        return list(await asyncio.gather(*(self._one(ref, limits) for ref in refs)))

    async def _one(self, ref: ImageRef, limits: ImageLimits) -> PreparedImage:
        try:
            data = decode_data_url(ref.url, max_bytes=limits.max_bytes) if is_data_url(ref.url) else b""
            decoded: DecodedImage = await asyncio.to_thread(decode_image, data, limits)
        except Exception as exc:
            from loupe.errors import LoupeError

            if isinstance(exc, LoupeError):
                raise exc.with_param(ref.param) from None
            raise
        return PreparedImage(
            pixels=decoded.pixels,
            width=decoded.width,
            height=decoded.height,
            original_width=decoded.width,
            original_height=decoded.height,
            detail=ref.detail or Detail.HIGH,
            content_hash=decoded.content_hash,
        )
