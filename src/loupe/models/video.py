"""Video token rules: which frames a family's processor samples, at what size, and their tokens.

Pure arithmetic, as for images: from the container's metadata (frame count, rate, frame size)
and the request's `fps`, `max_frames` and `detail`, a family's rules give the frame indices to
decode, the size each frame is resized to (one the reference processor keeps as it is), and the
video placeholder tokens the processor inserts. Text the processor writes around the frames
(Qwen3-VL and GLM-4V timestamps, SmolVLM's frame count and times) is counted by the checkpoint's
tokenizer where the prompt is built. See docs/image-tokens.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from loupe.domain import Detail
from loupe.errors import InvalidRequest, TooManyVideoFrames

DEFAULT_FPS = 2.0
"""Frames sampled per second of video when neither the request nor the processor says."""


@dataclass(frozen=True, slots=True)
class VideoShape:
    """What a video's container says: `frame_count` frames at `fps`, each `width` x `height`."""

    frame_count: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


@dataclass(frozen=True, slots=True)
class Sampling:
    """The request's sampling: `fps` and `max_frames` as resolved for the model (never None)."""

    fps: float
    max_frames: int


@dataclass(frozen=True, slots=True)
class VideoPlan:
    """The frames to decode, the (width, height) each is resized to, and their placeholders."""

    indices: tuple[int, ...]
    width: int
    height: int
    detail_applied: Detail
    tokens: int


SettingsT = TypeVar("SettingsT")


class VideoRules(Protocol[SettingsT]):
    """One family's video rules; stateless, pure arithmetic."""

    @property
    def family(self) -> str: ...

    def settings(self, config: Mapping[str, Any]) -> SettingsT:
        """The video processor's settings from its configuration (`video_preprocessor_config.json`,
        else `preprocessor_config.json`); absent keys take the video processor's class defaults.
        Raises ModelLoadError for a bad value."""
        ...

    def default_sampling(self, settings: SettingsT) -> tuple[float | None, int]:
        """The processor's own frame rate (None: it has none) and most frames."""
        ...

    def plan(
        self, shape: VideoShape, sampling: Sampling, detail: Detail | None, settings: SettingsT, budget: int
    ) -> VideoPlan:
        """The frames this family's processor samples from `shape` and what they cost.

        `budget` caps each frame's tokens for `detail: auto`. Raises InvalidVideoFormat or
        InvalidRequest for a video the processor refuses (too few frames, too elongated)."""
        ...


def resolve_sampling(
    fps: float | None, max_frames: int | None, defaults: tuple[float | None, int], limit: int
) -> Sampling:
    """The request's `fps` and `max_frames`, else the processor's, else Loupe's; `limit` is the
    most frames the server samples from one video. Raises InvalidRequest for values out of range
    and TooManyVideoFrames above `limit`, each naming its field (`fps`, `max_frames`)."""
    default_fps, processor_max = defaults
    if fps is not None and not 0 < fps <= 60:
        raise InvalidRequest("video_url.fps must be above 0 and at most 60", param="fps")
    if max_frames is not None and max_frames < 1:
        raise InvalidRequest("video_url.max_frames must be at least 1", param="max_frames")
    if max_frames is not None and max_frames > limit:
        raise TooManyVideoFrames(
            f"max_frames is {max_frames}; this model samples at most {limit} frames a video.", param="max_frames"
        )
    chosen = max_frames if max_frames is not None else min(limit, processor_max)
    return Sampling(fps=fps or default_fps or DEFAULT_FPS, max_frames=chosen)
