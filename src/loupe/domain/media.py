"""Images and videos as a request names them, as their headers plan them, and as they are
prepared for an engine. No HTTP, no torch: pixels are typed loosely."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Detail(str, enum.Enum):
    """OpenAI's `image_url.detail`."""

    LOW = "low"
    HIGH = "high"
    AUTO = "auto"


# What an image without `detail` gets: `auto`, as in OpenAI's API (full resolution only on request).
DEFAULT_DETAIL = Detail.AUTO


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image part as the client sent it: a data URL or an http(s) URL, not yet fetched.

    `param` locates it in the request (`messages[0].content[1].image_url`) for error reports.
    `detail` is None when the client did not say.
    """

    url: str
    detail: Detail | None
    param: str


@dataclass(frozen=True, slots=True)
class SourceFile:
    """An image file as the client sent it, kept where any decoder makes of it exactly the
    picture Loupe decoded: a still JPEG, PNG or WebP stored as upright RGB (no EXIF turn, no
    transparency, no palette, grey, CMYK or 16-bit samples to convert). An upstream server
    given the file itself then sees the pixels Loupe counted, without a re-encoding."""

    data: bytes
    format: str  # jpeg, png or webp


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """A decoded RGB image, validated and planned for the detail applied.

    `pixels` is upright RGB: a PIL image, or a uint8 array [height, width, 3] (a JPEG decoded
    whole; see `media.pixels`), typed loosely so this module imports neither;
    `width` x `height` is the size the model sees it at. The pixels may be larger (the decoded
    picture, or a DCT-scaled decode of it): each engine resizes them there, bicubic, with its
    fastest faithful resize.
    `content_hash` is the sha256 of the image's file (which decides the pixels), for caches keyed by content.
    `tokens` is what the model family's counter planned for it; `processor_overrides` are the
    per-image processor arguments the plan needs (`do_image_splitting=False` for SmolVLM low).
    `source` is the client's file where its pixels are exactly the file's (see `SourceFile`).
    """

    pixels: Any
    width: int
    height: int
    original_width: int
    original_height: int
    detail: Detail
    content_hash: str
    tokens: int = 0
    processor_overrides: tuple[tuple[str, bool | int], ...] = ()
    source: SourceFile | None = None

    @property
    def resized(self) -> bool:
        """Whether the model sees it at another size than the picture's own."""
        return (self.width, self.height) != (self.original_width, self.original_height)


def nested_overrides(pairs: tuple[tuple[str, bool | int], ...]) -> dict[str, Any]:
    """(key, value) pairs as processor keyword arguments; a dotted key nests (`size.longest_edge`)."""
    kwargs: dict[str, Any] = {}
    for key, value in pairs:
        *parents, leaf = key.split(".")
        target = kwargs
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return kwargs


@dataclass(frozen=True, slots=True)
class PlannedImage:
    """An image known only by its header: enough to count its tokens, not to run a model."""

    index: int
    width: int
    height: int
    detail: Detail | None
    detail_applied: Detail
    resized_width: int
    resized_height: int
    tokens: int


@dataclass(frozen=True, slots=True)
class VideoRef:
    """A video part as the client sent it: a data URL or an http(s) URL, not yet fetched.

    `fps` (frames sampled per second of video) and `max_frames` are None when the client did
    not say (the model's defaults apply); `detail` applies to every sampled frame.
    """

    url: str
    detail: Detail | None
    param: str
    fps: float | None = None
    max_frames: int | None = None


@dataclass(frozen=True, slots=True)
class VideoFrames:
    """The frames a video plan samples and the geometry the model sees them at.

    `indices` are frame numbers of the video (frame i is shown at i / `video_fps` s);
    `width` x `height` is each frame's planned size; `tokens` the placeholders the family's
    rules count for them (the prompt may add text around them: timestamps, a frame count).
    """

    indices: tuple[int, ...]
    video_fps: float
    frame_count: int
    duration_s: float
    width: int
    height: int
    original_width: int
    original_height: int
    detail: Detail
    tokens: int


@dataclass(frozen=True, slots=True)
class PlannedVideo:
    """A video known only by its header: its plan, enough to count its tokens; `detail` is
    what the client asked (None: not said)."""

    index: int
    frames: VideoFrames
    detail: Detail | None = None


@dataclass(frozen=True, slots=True)
class PreparedVideo:
    """A video's sampled frames at their planned size: `pixels` is a uint8 array
    [frames, height, width, 3] (typed loosely, as PreparedImage's). `content_hash` keys the
    frames (the file, the indices and the size) for caches keyed by content."""

    pixels: Any
    frames: VideoFrames
    content_hash: str
