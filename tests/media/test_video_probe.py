"""Probing plans from the container's metadata alone, and refuses absurd files before decoding."""

from __future__ import annotations

import pytest

from loupe.errors import (
    InvalidVideoFormat,
    TooManyVideoFrames,
    VideoExceedsMaxDuration,
    VideoExceedsMaxResolution,
    VideoFileExceedsMaxSize,
)
from loupe.media.video_formats import sniff_container
from loupe.media.video_limits import VideoLimits
from loupe.media.video_probe import probe_video
from tests.video_clips import PHOTOS, clip, encode

LIMITS = VideoLimits()


@pytest.mark.parametrize(
    ("name", "container", "codec"),
    [("mp4", "mp4", "h264"), ("webm", "webm", "vp9"), ("gif", "gif", "gif"), ("mov", "mov", "h264"), ("webp", "webp", "webp")],
)
def test_each_container_is_probed_from_its_metadata(name: str, container: str, codec: str) -> None:
    made = clip(name)
    header = probe_video(made.data, LIMITS)
    assert (header.container, header.codec) == (container, codec)
    assert (header.width, header.height) == (made.width, made.height)
    assert header.frame_count == made.frames
    assert header.fps == pytest.approx(made.fps)
    assert header.duration_s == pytest.approx(made.frames / made.fps)
    assert header.byte_size == len(made.data)


def test_probing_decodes_no_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    import av.container

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("probe decoded a frame")

    monkeypatch.setattr(av.container.InputContainer, "decode", no_decoding)
    assert probe_video(clip("mp4").data, LIMITS).frame_count == 100


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ((PHOTOS / "bus.jpg").read_bytes(), "JPEG image"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "AVI"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00", "HEIF/AVIF"),
        (b"#EXTM3U\n#EXT-X-TARGETDURATION:10\nhttp://169.254.169.254/x.ts\n", "not a video"),
        (b"ffconcat version 1.0\nfile /etc/passwd\n", "not a video"),
        (b"", "not a video"),
    ],
)
def test_what_is_not_an_accepted_video_is_refused_by_its_bytes(data: bytes, named: str) -> None:
    with pytest.raises(InvalidVideoFormat, match=named):
        probe_video(data, LIMITS)


def test_a_still_webp_is_not_a_video() -> None:
    data = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16
    with pytest.raises(InvalidVideoFormat, match="still WEBP"):
        sniff_container(data)


def test_limits_are_checked_from_the_header() -> None:
    data = clip("mp4").data
    with pytest.raises(VideoFileExceedsMaxSize):
        probe_video(data, VideoLimits(max_bytes=len(data) - 1))
    with pytest.raises(VideoExceedsMaxDuration, match="4.0 s"):
        probe_video(data, VideoLimits(max_duration_s=3.5))
    with pytest.raises(VideoExceedsMaxResolution, match="320x240"):
        probe_video(data, VideoLimits(max_pixels=320 * 240 - 1))
    with pytest.raises(VideoExceedsMaxResolution):
        probe_video(data, VideoLimits(max_side=300))
    with pytest.raises(TooManyVideoFrames, match="25 frames per second"):
        probe_video(data, VideoLimits(max_fps=24))


def test_an_absurd_declared_rate_is_refused() -> None:
    fast = encode(32, 32, 1000, 0.01)
    with pytest.raises(TooManyVideoFrames):
        probe_video(fast.data, LIMITS)


@pytest.mark.parametrize("name", ["mp4", "webm"])
def test_a_container_cut_in_its_header_is_refused(name: str) -> None:
    with pytest.raises(InvalidVideoFormat):
        probe_video(clip(name).data[:40], LIMITS)
