"""Decode only the frames a plan samples: seek near each, decode forward to it, resize it.

Frame i of a video is the one shown at i / fps seconds from its start, as the reference
processors index frames. For each wanted frame the demuxer seeks to the keyframe before it,
unless the decoder already stands within a second before it (then decoding on is cheaper
than a seek); frames on the way are decoded (inter-coded video needs them) but never converted
to RGB or kept. Each kept frame is converted and resized straight away, so memory holds the
sampled frames at their planned size only. A wall-clock deadline and a bound on decoded frames
stop a file whose timestamps lie.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator, Sequence

import av
import numpy as np
from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream
from PIL import Image

from loupe.errors import InvalidVideoFormat, VideoExceedsMaxResolution
from loupe.media.video_formats import DEMUXERS
from loupe.media.video_limits import VideoLimits
from loupe.media.video_probe import VideoHeader, opened, video_stream

# Decode on rather than seek when the next wanted frame is at most this far ahead.
_SEEK_GAP_S = 1.0
# Containers whose demuxer cannot seek (an animated GIF is decoded in order; they are small).
_UNSEEKABLE = frozenset({"gif"})
# A file may decode a few more frames than it declares (rounded durations, edit lists).
_SLACK_FRAMES = 64


def sample_video(
    data: bytes, header: VideoHeader, indices: Sequence[int], size: tuple[int, int], limits: VideoLimits
) -> np.ndarray:
    """The frames at `indices` (in the order given, repeats allowed), each turned upright (see
    `VideoHeader.rotation`) and resized to `size` (width, height) with Pillow's bicubic filter:
    uint8 [frames, height, width, 3].

    CPU-bound: call it off the event loop. Raises InvalidVideoFormat for a truncated or corrupt
    file (a wanted frame is missing or undecodable) or one that takes longer than
    `limits.decode_timeout_s`, and VideoExceedsMaxResolution for a frame larger than declared.
    """
    if not indices:
        raise ValueError("no frames to sample")
    if min(indices) < 0 or max(indices) >= header.frame_count:
        raise ValueError(f"frame indices must be within 0..{header.frame_count - 1}")
    wanted = sorted(set(indices))
    deadline = time.monotonic() + limits.decode_timeout_s
    if DEMUXERS[header.container] is None:
        found = _animation_frames(data, wanted, size, deadline, limits)
    else:
        with opened(data, header.container) as container:
            found = _stream_frames(container, header, wanted, size, deadline, limits)
    out = np.empty((len(indices), size[1], size[0], 3), dtype=np.uint8)
    for i, index in enumerate(indices):
        out[i] = found[index]
    return out


def _stream_frames(
    container: InputContainer,
    header: VideoHeader,
    wanted: list[int],
    size: tuple[int, int],
    deadline: float,
    limits: VideoLimits,
) -> dict[int, np.ndarray]:
    stream = video_stream(container)
    stream.codec_context.thread_type = "AUTO"
    # FFmpeg refuses to allocate a frame over the limit (a bitstream that grows mid-way); the
    # decoders pad frames somewhat, so the exact declared size is checked on each frame instead.
    stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
    clock = _Clock(stream, header.fps)
    budget = header.frame_count + _SLACK_FRAMES
    found: dict[int, np.ndarray] = {}
    frames: Iterator[VideoFrame] | None = None
    at = -1.0  # seconds of the last decoded frame
    for index in wanted:
        target = index / header.fps
        if target - max(at, 0.0) > _SEEK_GAP_S and header.container not in _UNSEEKABLE:
            container.seek(clock.pts(target), stream=stream, backward=True, any_frame=False)
            frames = None
        if frames is None:
            frames = container.decode(stream)
        last: VideoFrame | None = None
        for frame in frames:
            budget -= 1
            _check(frame, header, budget, deadline)
            at = clock.seconds(frame)
            last = frame
            if at >= target - clock.half_frame:
                break
        else:
            frames = None  # the stream ended: the last frame shown stands for what is after it
            if last is None or target - at > 1.5 / header.fps:
                raise InvalidVideoFormat(
                    f"The video is truncated: frame {index} ({target:.2f} s) could not be decoded."
                )
        assert last is not None
        found[index] = _resized(_turned(last.to_ndarray(format="rgb24"), header.rotation), size)
    return found


class _Clock:
    """Stream timestamps to seconds from the stream's start, and back."""

    def __init__(self, stream: VideoStream, fps: float) -> None:
        if stream.time_base is None:
            raise InvalidVideoFormat("The video stream has no time base.")
        self._base = float(stream.time_base)
        self._start = stream.start_time or 0
        self.half_frame = 0.5 / fps

    def pts(self, seconds: float) -> int:
        return self._start + int(seconds / self._base)

    def seconds(self, frame: VideoFrame) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            raise InvalidVideoFormat("The video has frames without timestamps.")
        return float((pts - self._start) * self._base)


def _check(frame: VideoFrame, header: VideoHeader, budget: int, deadline: float) -> None:
    if frame.width * frame.height > header.width * header.height:
        raise VideoExceedsMaxResolution(
            f"A frame is {frame.width}x{frame.height}, larger than the {header.width}x{header.height} the video declares."
        )
    if budget < 0:
        raise InvalidVideoFormat("The video holds more frames than it declares.")
    if time.monotonic() > deadline:
        raise InvalidVideoFormat("The video took too long to decode; re-encode it with a standard encoder.")


def _animation_frames(
    data: bytes, wanted: list[int], size: tuple[int, int], deadline: float, limits: VideoLimits
) -> dict[int, np.ndarray]:
    """Frames of an animated WebP through Pillow, which decodes frames in order."""
    found: dict[int, np.ndarray] = {}
    try:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as image:
            for index in wanted:
                if time.monotonic() > deadline:
                    raise InvalidVideoFormat(f"The video took longer than {limits.decode_timeout_s:g} s to decode.")
                image.seek(index)
                found[index] = _resized(np.asarray(image.convert("RGB")), size)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidVideoFormat(f"The animated WEBP is truncated or corrupt ({exc}).") from None
    return found


def _turned(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A stored frame turned upright (`rotation` degrees counterclockwise, a quarter turn)."""
    return np.ascontiguousarray(np.rot90(rgb, rotation // 90)) if rotation else rgb


def _resized(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))
