"""Video intake: data URLs and SSRF-safe fetches, errors at their part, sampled frames cached."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import pytest

from loupe.domain import VideoRef
from loupe.errors import (
    InvalidVideoFormat,
    VideoFetchFailed,
    VideoFileExceedsMaxSize,
    VideoUrlForbidden,
)
from loupe.lru import ByteLRU
from loupe.media.fetch import ImageFetcher
from loupe.media.limits import ImageLimits
from loupe.media.video_intake import FramePlan, VideoIntake
from loupe.media.video_limits import VideoLimits
from tests.video_clips import PHOTOS, clip

from .support import RecordingTransport, StubResolver

T = TypeVar("T")
PUBLIC_IP = "93.184.216.34"


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def ref(url: str, index: int = 0) -> VideoRef:
    return VideoRef(url=url, detail=None, param=f"messages[0].content[{index}].video_url")


def data_url(data: bytes, declared: str = "video/mp4") -> str:
    return f"data:{declared};base64,{base64.b64encode(data).decode()}"


def intake_with(transport: httpx.AsyncBaseTransport, **kwargs: object) -> VideoIntake:
    fetcher = ImageFetcher(ImageLimits(), transport=transport, resolver=StubResolver({"videos.example": [PUBLIC_IP]}))
    return VideoIntake(VideoLimits(), fetcher=fetcher, **kwargs)  # type: ignore[arg-type]


def test_data_url_and_fetched_copy_read_alike(recording: RecordingTransport) -> None:
    mp4 = clip("mp4").data
    recording.routes[(PUBLIC_IP, "/clip.mp4")] = httpx.Response(200, content=mp4)
    intake = intake_with(recording)
    encoded = run(intake.fetch([ref(data_url(mp4, "video/webm"), 0), ref("https://videos.example/clip.mp4", 1)]))
    assert encoded[0].header == encoded[1].header
    assert encoded[0].digest == encoded[1].digest
    assert recording.requests[0].headers["Accept"] == "video/*"


@pytest.mark.parametrize("declared", ["image/gif", "image/webp", "video/quicktime", "application/octet-stream"])
def test_animations_and_generic_types_are_taken_as_declared_video(declared: str) -> None:
    encoded = run(VideoIntake(VideoLimits()).fetch([ref(data_url(clip("gif").data, declared))]))
    assert encoded[0].header.container == "gif"


def test_errors_name_the_part(recording: RecordingTransport) -> None:
    intake = intake_with(recording)
    jpeg = (PHOTOS / "bus.jpg").read_bytes()
    with pytest.raises(InvalidVideoFormat, match="JPEG image") as refused:
        run(intake.fetch([ref(data_url(clip("mp4").data), 0), ref(data_url(jpeg), 2)]))
    assert refused.value.param == "messages[0].content[2].video_url"
    with pytest.raises(InvalidVideoFormat, match="not a video"):
        run(intake.fetch([ref(data_url(jpeg, "image/jpeg"))]))
    with pytest.raises(VideoFetchFailed, match="video URL answered HTTP 404") as failed:
        run(intake.fetch([ref("https://videos.example/missing.mp4", 3)]))
    assert failed.value.param == "messages[0].content[3].video_url"


def test_forbidden_addresses_and_no_fetcher(recording: RecordingTransport) -> None:
    with pytest.raises(VideoUrlForbidden):
        run(intake_with(recording).fetch([ref("http://169.254.169.254/latest/meta-data")]))
    assert recording.requests == []
    with pytest.raises(VideoUrlForbidden, match="base64 data URL"):
        run(VideoIntake(VideoLimits()).fetch([ref("https://videos.example/clip.mp4")]))


def test_byte_caps_apply_to_data_urls_and_fetches(recording: RecordingTransport) -> None:
    mp4 = clip("mp4").data
    recording.routes[(PUBLIC_IP, "/clip.mp4")] = httpx.Response(200, content=mp4)
    fetcher = ImageFetcher(ImageLimits(), transport=recording, resolver=StubResolver({"videos.example": [PUBLIC_IP]}))
    small = VideoIntake(VideoLimits(max_bytes=1000), fetcher=fetcher)
    with pytest.raises(VideoFileExceedsMaxSize):
        run(small.fetch([ref(data_url(mp4))]))
    with pytest.raises(VideoFileExceedsMaxSize):
        run(small.fetch([ref("https://videos.example/clip.mp4")]))


def test_sampled_frames_are_cached_by_file_and_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    from loupe.media import video_intake

    calls: list[FramePlan] = []
    real = video_intake.sample_video

    def counted(data: bytes, header: object, indices: tuple[int, ...], size: tuple[int, int], limits: VideoLimits):  # type: ignore[no-untyped-def]
        calls.append(FramePlan(indices, size))
        return real(data, header, indices, size, limits)  # type: ignore[arg-type]

    monkeypatch.setattr(video_intake, "sample_video", counted)
    intake = VideoIntake(VideoLimits(), cache=ByteLRU(64 * 1024 * 1024))
    refs = [ref(data_url(clip("zoom").data))]
    plan = FramePlan((0, 10, 20), (56, 28))
    first = run(intake.sample(refs, run(intake.fetch(refs)), [plan]))
    again = run(intake.sample(refs, run(intake.fetch(refs)), [plan]))
    other = run(intake.sample(refs, run(intake.fetch(refs)), [FramePlan((0, 10), (56, 28))]))
    assert first[0] is again[0]
    assert first[0].shape == (3, 28, 56, 3) and other[0].shape == (2, 28, 56, 3)
    assert len(calls) == 2
