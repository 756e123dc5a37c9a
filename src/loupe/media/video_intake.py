"""A request's videos in: bytes (data URL or SSRF-safe fetch), header, and the sampled frames.

Two steps, as for images, so a caller plans from the header before decoding: `fetch` gets each
video's bytes and reads its container's metadata; `sample` decodes only the frames each plan
names, resized to the plan's size. Chat clients resend a conversation's videos every turn:
an optional cache keeps sampled frames by (file sha256, indices, size), so a later turn with
the same video decodes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from loupe.domain import VideoRef
from loupe.errors import (
    ImageError,
    ImageFetchFailed,
    ImageFileExceedsMaxSize,
    InvalidVideoFormat,
    VideoError,
    VideoFetchFailed,
    VideoFileExceedsMaxSize,
    VideoUrlForbidden,
)
from loupe.lru import ByteLRU
from loupe.media.data_url import PayloadKind, decode_data_url, is_data_url
from loupe.media.each import each
from loupe.media.fetch import ImageFetcher
from loupe.media.video_limits import VideoLimits
from loupe.media.video_probe import VideoHeader, probe_video
from loupe.media.video_sample import sample_video

VIDEO_PAYLOAD = PayloadKind(
    "video",
    "a video",
    ("video/", "image/gif", "image/webp", "application/octet-stream"),
    "Expected `data:video/<format>;base64,<payload>`.",
    InvalidVideoFormat,
    VideoFileExceedsMaxSize,
)
"""Video data URLs: `video/*`, or the image types animations travel as (GIF, WebP)."""


@dataclass(frozen=True, slots=True)
class EncodedVideo:
    """A video's bytes, their sha256, and what its container says."""

    data: bytes
    header: VideoHeader
    digest: str


@dataclass(frozen=True, slots=True)
class FramePlan:
    """Which frames to decode and the (width, height) to resize each to."""

    indices: tuple[int, ...]
    size: tuple[int, int]


SampledCache = ByteLRU[tuple[str, FramePlan], np.ndarray]
"""Sampled frames by (file sha256, plan): uint8 [frames, height, width, 3]."""


class VideoIntake:
    """Loads the videos of one request concurrently; decoding runs off the event loop.

    Without a `fetcher`, http(s) video URLs are refused and only data URLs are accepted.
    `executor` runs probing and decoding; None means the event loop's default executor.
    `cache` keeps sampled frames for later requests; it is used from the event loop only.
    Construction does no I/O.
    """

    def __init__(
        self,
        limits: VideoLimits,
        *,
        fetcher: ImageFetcher | None = None,
        executor: Executor | None = None,
        cache: SampledCache | None = None,
    ) -> None:
        self._limits = limits
        self._fetcher = fetcher
        self._executor = executor
        self._cache = cache

    @property
    def limits(self) -> VideoLimits:
        return self._limits

    async def fetch(self, refs: Sequence[VideoRef]) -> list[EncodedVideo]:
        """Every video's bytes and header, in the order given; no frame is decoded.

        Raises the first VideoError met, located at its VideoRef's `param`."""
        return await each(refs, refs, lambda ref, _: self._fetch_one(ref), VideoError)

    async def sample(
        self, refs: Sequence[VideoRef], encoded: Sequence[EncodedVideo], plans: Sequence[FramePlan]
    ) -> list[np.ndarray]:
        """Each video's planned frames, decoded and resized. Raises as `fetch` does."""
        return await each(refs, list(zip(encoded, plans, strict=True)), self._sample_one, VideoError)

    async def _fetch_one(self, ref: VideoRef) -> EncodedVideo:
        loop = asyncio.get_running_loop()
        if is_data_url(ref.url):
            return await loop.run_in_executor(self._executor, self._read_data_url, ref.url)
        data = await self._fetch(ref.url)
        return await loop.run_in_executor(self._executor, self._read, data)

    def _read_data_url(self, url: str) -> EncodedVideo:
        return self._read(decode_data_url(url, max_bytes=self._limits.max_bytes, kind=VIDEO_PAYLOAD))

    def _read(self, data: bytes) -> EncodedVideo:
        return EncodedVideo(data, probe_video(data, self._limits), hashlib.sha256(data).hexdigest())

    async def _sample_one(self, ref: VideoRef, item: tuple[EncodedVideo, FramePlan]) -> np.ndarray:
        video, plan = item
        key = (video.digest, plan)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        frames = await loop.run_in_executor(
            self._executor, sample_video, video.data, video.header, plan.indices, plan.size, self._limits
        )
        if self._cache is not None:
            self._cache.put(key, frames, frames.nbytes)
        return frames

    async def _fetch(self, url: str) -> bytes:
        if self._fetcher is None:
            raise VideoUrlForbidden("This server does not fetch video URLs; send the video as a base64 data URL.")
        try:
            return await self._fetcher.fetch(url, max_bytes=self._limits.max_bytes, accept="video/*")
        except ImageError as exc:
            raise _as_video_error(exc) from None


def _as_video_error(error: ImageError) -> VideoError:
    """The shared fetcher speaks of images; a video part gets the same reason in video terms."""
    message = error.message.replace("image", "video").replace("Image", "Video")
    if isinstance(error, ImageFileExceedsMaxSize):
        return VideoFileExceedsMaxSize(message)
    if isinstance(error, ImageFetchFailed):
        return VideoFetchFailed(message)
    return VideoUrlForbidden(message)
