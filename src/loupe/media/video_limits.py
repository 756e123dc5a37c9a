"""The limits one video must respect, from the bytes on the wire to the frames decoded."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class VideoLimits:
    """What Loupe accepts for one video; checked from the container's metadata before decoding.

    `max_frames` bounds the frames sampled from one video (a request's `max_frames` may only
    lower it); `max_fps` refuses streams declaring absurd rates (a small file claiming millions
    of frames); `decode_timeout_s` bounds the wall time spent decoding one video's samples, so a
    file whose metadata lies (a stream that never ends) is refused rather than decoded forever.
    """

    max_bytes: int = 64 * MiB
    max_duration_s: float = 600.0
    max_frames: int = 256
    max_pixels: int = 8_847_360  # 4096 x 2160: a 4K frame
    max_side: int = 8192
    min_side: int = 1
    max_fps: float = 240.0
    decode_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_frames", "max_pixels", "max_side", "min_side"):
            if getattr(self, name) < 1:
                raise ValueError(f"VideoLimits.{name} must be at least 1")
        for name in ("max_duration_s", "max_fps", "decode_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"VideoLimits.{name} must be positive")
        if self.min_side > self.max_side:
            raise ValueError("VideoLimits.min_side must not exceed max_side")
