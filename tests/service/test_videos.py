"""The video service: plans from headers alone, samples what it planned, refuses with clear codes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from loupe.domain import Detail, ModelCard, VideoRef
from loupe.errors import (
    InvalidVideoFormat,
    TooManyVideoFrames,
    TooManyVideos,
    VideoCombinationNotSupported,
    VideoNotSupported,
    VideoTokensExceeded,
)
from loupe.media.video_intake import VideoIntake
from loupe.media.video_limits import VideoLimits
from loupe.models.video_catalog import video_counter_for
from loupe.service.videos import VideoModel, VideoService, video_cost
from tests.video_clips import clip

T = TypeVar("T")
CARD = ModelCard(id="m", created=0, owned_by="test", family="qwen2-vl", checkpoint="c", context_size=32768, max_images=8)
LLAVA = ModelCard(id="old", created=0, owned_by="test", family="llava", checkpoint="c", context_size=4096, max_images=1)


def run(awaitable: Awaitable[T]) -> T:
    async def main() -> T:
        return await awaitable

    return asyncio.run(main())


def ref(name: str, index: int = 0, **kwargs: object) -> VideoRef:
    url = "data:video/mp4;base64," + base64.b64encode(clip(name).data).decode()
    return VideoRef(url=url, param=f"messages[0].content[{index}].video_url", detail=kwargs.pop("detail", None), **kwargs)  # type: ignore[arg-type]


def service(**limits: int) -> VideoService:
    counter = video_counter_for("qwen2-vl", {}, budget=1024, max_frames=64)
    return VideoService(
        {"m": VideoModel(VideoIntake(VideoLimits()), counter, **limits), "old": VideoModel(VideoIntake(VideoLimits()), None)}
    )


def test_plan_and_prepare_agree_and_only_prepare_decodes() -> None:
    videos = service()
    planned = run(videos.plan(CARD, [ref("mp4", fps=2.0, max_frames=8)]))
    prepared = run(videos.prepare(CARD, [ref("mp4", fps=2.0, max_frames=8)]))
    frames = planned[0].frames
    assert frames == prepared[0].frames
    assert len(frames.indices) == 8 and frames.frame_count == 100 and frames.video_fps == 25.0
    assert prepared[0].pixels.shape == (8, frames.height, frames.width, 3)
    assert frames.tokens == 4 * (frames.height // 28) * (frames.width // 28)


def test_the_frames_key_follows_the_plan() -> None:
    videos = service()
    first = run(videos.prepare(CARD, [ref("zoom", detail=Detail.HIGH)]))[0]
    again = run(videos.prepare(CARD, [ref("zoom", detail=Detail.HIGH)]))[0]
    fewer = run(videos.prepare(CARD, [ref("zoom", detail=Detail.HIGH, max_frames=4)]))[0]
    assert first.content_hash == again.content_hash != fewer.content_hash
    assert len(fewer.frames.indices) == 4 < len(first.frames.indices)


def test_refusals_name_the_model_the_part_and_the_field() -> None:
    with pytest.raises(VideoNotSupported, match="'old'"):
        run(service().plan(LLAVA, [ref("mp4")]))
    with pytest.raises(TooManyVideos):
        run(service(max_videos=1).plan(CARD, [ref("mp4", 0), ref("zoom", 1)]))
    with pytest.raises(VideoTokensExceeded):
        run(service(max_video_tokens=100).plan(CARD, [ref("mp4")]))
    with pytest.raises(TooManyVideoFrames) as frames:
        run(service().plan(CARD, [ref("mp4", 2, max_frames=65)]))
    assert frames.value.param == "messages[0].content[2].video_url.max_frames"
    broken = VideoRef(url="data:video/mp4;base64," + base64.b64encode(clip("mp4").data[:50]).decode(), detail=None, param="messages[1].content[0].video_url")
    with pytest.raises(InvalidVideoFormat) as refused:
        run(service().plan(CARD, [broken]))
    assert refused.value.param == "messages[1].content[0].video_url"


def test_no_videos_no_work() -> None:
    assert run(service().plan(LLAVA, [])) == []


def test_check_refuses_at_once_what_the_model_cannot_take() -> None:
    videos = VideoService(
        {
            "m": VideoModel(VideoIntake(VideoLimits()), video_counter_for("qwen2-vl", {}, budget=1024, max_frames=64)),
            "smol": VideoModel(VideoIntake(VideoLimits()), video_counter_for("smolvlm", {}, budget=1024, max_frames=64)),
        }
    )
    smol = ModelCard(id="smol", created=0, owned_by="test", family="smolvlm", checkpoint="c", context_size=8192, max_images=8)
    broken = VideoRef(url="data:video/mp4;base64,AAAA", detail=None, param="messages[0].content[0].video_url")
    videos.check(CARD, [broken], images=2)  # Qwen-VL takes both; nothing is fetched to check
    videos.check(smol, [broken])
    with pytest.raises(VideoCombinationNotSupported, match="'smol'|smol"):
        videos.check(smol, [broken], images=1)
    with pytest.raises(VideoNotSupported):
        videos.check(LLAVA, [broken])


def test_prepare_admits_the_frames_bytes_before_decoding() -> None:
    admitted: list[int] = []

    async def admit(cost: int) -> None:
        admitted.append(cost)

    [video] = run(service().prepare(CARD, [ref("zoom", max_frames=4)], admit))
    frames = video.frames
    assert admitted == [4 * frames.width * frames.height * 3 * 5] == [video_cost(frames)]
