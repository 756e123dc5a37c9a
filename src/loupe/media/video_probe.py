"""A video's plan inputs from its container's metadata alone: size, rate, frames, duration.

No frame is decoded here: `/v1/estimate` and the refusals of absurd files (huge frames,
millions of declared frames, hours of duration) answer from the header. Only where a container
declares neither its frame count nor its duration (a live-recorded WebM) are its packets
counted, which reads the bytes once but decodes nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import InputContainer
from av.video.stream import VideoStream
from PIL import Image

from loupe.errors import (
    InvalidVideoFormat,
    TooManyVideoFrames,
    VideoExceedsMaxDuration,
    VideoExceedsMaxResolution,
    VideoFileExceedsMaxSize,
)
from loupe.media.video_formats import CODECS, DEMUXERS, sniff_container
from loupe.media.video_limits import VideoLimits
from loupe.media.video_rotation import mp4_rotation, upright

# What PyAV raises for data FFmpeg cannot parse (its errors are OSError subclasses).
_AV_FAILURES = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError, ZeroDivisionError)
# Options for every demuxer Loupe opens: no external data references (a MOV may name other files).
_DEMUXER_OPTIONS = {"enable_drefs": "0", "use_absolute_path": "0"}


@dataclass(frozen=True, slots=True)
class VideoHeader:
    """What the container says: `frame_count` frames at `fps`, each `width` x `height`.

    `duration_s` is `frame_count / fps`, the convention the reference processors' metadata
    follows (transformers' PyAV reader). `container` is Loupe's name (`mp4`, `webm`, `gif`...),
    `codec` FFmpeg's (`h264`, `vp9`...). `width` x `height` is the frame as shown: a phone
    clip's frames are stored turned, and `rotation` (degrees counterclockwise, a quarter turn)
    is the turn that shows them upright (see video_rotation).
    """

    container: str
    codec: str
    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    byte_size: int
    rotation: int = 0


def probe_video(data: bytes, limits: VideoLimits) -> VideoHeader:
    """Read a video's header and refuse what the limits exclude, decoding no frame.

    Raises VideoFileExceedsMaxSize, InvalidVideoFormat (not a video, an unsupported container
    or codec, no video stream, unreadable metadata), VideoExceedsMaxResolution,
    VideoExceedsMaxDuration and TooManyVideoFrames (an absurd declared rate or count).
    """
    if len(data) > limits.max_bytes:
        raise VideoFileExceedsMaxSize(f"The video is {len(data)} bytes; the limit is {limits.max_bytes} bytes.")
    container_name = sniff_container(data)
    if DEMUXERS[container_name] is None:
        header = _probe_animation(data, container_name)
    else:
        with opened(data, container_name) as container:
            header = _probe_stream(container, container_name, data)
    check_header(header, limits)
    return header


def check_header(header: VideoHeader, limits: VideoLimits) -> None:
    """Refuse a declared size, rate or length before any frame is allocated."""
    width, height = header.width, header.height
    if width > limits.max_side or height > limits.max_side or width * height > limits.max_pixels:
        raise VideoExceedsMaxResolution(
            f"The video's frames are {width}x{height}; the limit is {limits.max_pixels} pixels "
            f"and {limits.max_side} pixels a side."
        )
    if width < limits.min_side or height < limits.min_side:
        raise InvalidVideoFormat(f"The video's frames are {width}x{height}; each side must be at least {limits.min_side}.")
    if not 0 < header.fps <= limits.max_fps:
        raise TooManyVideoFrames(f"The video declares {header.fps:g} frames per second; the limit is {limits.max_fps:g}.")
    if header.duration_s > limits.max_duration_s:
        raise VideoExceedsMaxDuration(
            f"The video lasts {header.duration_s:.1f} s; the limit is {limits.max_duration_s:g} s."
        )


@contextmanager
def opened(data: bytes, container_name: str) -> Iterator[InputContainer]:
    """The bytes opened with the container's own demuxer only; FFmpeg failures inside become
    InvalidVideoFormat."""
    with av_failures_as_invalid():
        container = av.open(io.BytesIO(data), mode="r", format=DEMUXERS[container_name], options=_DEMUXER_OPTIONS)
    try:
        with av_failures_as_invalid():
            yield container
    finally:
        container.close()


@contextmanager
def av_failures_as_invalid() -> Iterator[None]:
    try:
        yield
    except _AV_FAILURES as exc:
        raise InvalidVideoFormat(f"The video is truncated or corrupt ({exc}).") from None


def video_stream(container: InputContainer) -> VideoStream:
    """The first video stream; InvalidVideoFormat if there is none or its codec is refused."""
    if not container.streams.video:
        raise InvalidVideoFormat("The file holds no video stream.")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    if codec not in CODECS:
        raise InvalidVideoFormat(f"Video codec {codec!r} is not supported; accepted: {', '.join(sorted(CODECS))}.")
    return stream


def _probe_stream(container: InputContainer, container_name: str, data: bytes) -> VideoHeader:
    stream = video_stream(container)
    width, height = stream.codec_context.width, stream.codec_context.height
    if width < 1 or height < 1:
        raise InvalidVideoFormat("The video stream declares no frame size.")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    frames = stream.frames
    if frames <= 0:
        frames = _frames_from_duration(container, stream, fps)
    if frames <= 0:
        raise InvalidVideoFormat("The video stream has no frames.")
    duration = frames / fps if fps > 0 else 0.0
    rotation = mp4_rotation(data) if container_name in ("mp4", "mov") else 0
    width, height = upright(rotation, width, height)
    return VideoHeader(
        container_name, stream.codec_context.name, width, height, fps, frames, duration, len(data), rotation
    )


def _frames_from_duration(container: InputContainer, stream: VideoStream, fps: float) -> int:
    """Frames from the declared duration; where none is declared, from counting packets."""
    seconds: Fraction | float | None = None
    if stream.duration and stream.time_base:
        seconds = stream.duration * stream.time_base
    elif container.duration:
        seconds = container.duration / av.time_base
    if seconds is not None and fps > 0:
        return max(1, round(float(seconds) * fps))
    return sum(1 for packet in container.demux(stream) if packet.size)


def _probe_animation(data: bytes, container_name: str) -> VideoHeader:
    """An animated WebP, through Pillow (FFmpeg cannot decode these): its frame count and the
    first frame's display time, which sets the rate."""
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as image:
            frames = int(getattr(image, "n_frames", 1))
            interval_ms = image.info.get("duration") or 100
            width, height = image.size
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidVideoFormat(f"The animated WEBP is truncated or corrupt ({exc}).") from None
    fps = 1000 / interval_ms
    return VideoHeader(container_name, "webp", width, height, fps, frames, frames / fps, len(data))
