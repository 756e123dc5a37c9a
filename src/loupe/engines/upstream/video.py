"""Prepared videos in the form vLLM takes without resampling them: the sampled frames, and the
metadata its video processor would have read from the file.

vLLM's `video/jpeg` data URL is a comma-separated list of base64 frames, decoded each as an
image file, so Loupe sends the frames it sampled and sized as lossless PNGs (`encode.video_url`;
any format the image decoder reads is taken: the upstream sees the very pixels Loupe counted).
Request-level `media_io_kwargs.video` tells vLLM how many frames there are (without
`num_frames` it keeps at most 32), which frames of the file they are, the file's frame count,
rate and length, and not to sample again: its processor then writes the same timestamps and
placeholders as Loupe's count.
Those settings are the request's, not each video's, so a request's videos must share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loupe.domain import PreparedVideo, VideoFrames
from loupe.errors import VideoCombinationNotSupported

__all__ = ["media_io_kwargs"]


def media_io_kwargs(videos: Sequence[PreparedVideo]) -> dict[str, Any]:
    """The request's `media_io_kwargs` for these videos (empty without any). Raises
    InvalidRequest where two videos were sampled differently: the upstream takes one set."""
    settings = {_settings(v.frames) for v in videos}
    if len(settings) > 1:
        raise VideoCombinationNotSupported(
            "this model's upstream takes one frame sampling per request, and these videos were sampled "
            "differently (length, rate or frames); send each video in its own request",
            param="messages",
        )
    if not settings:
        return {}
    frames, fps, indices, total, duration = settings.pop()
    video = {
        "num_frames": frames,
        "fps": fps,
        "frames_indices": list(indices),
        "total_num_frames": total,
        "duration": duration,
        "do_sample_frames": False,
    }
    return {"media_io_kwargs": {"video": video}}


def _settings(frames: VideoFrames) -> tuple[int, float, tuple[int, ...], int, float]:
    # A one-frame video some families sample twice (GLM-4V pads to an even count) sends more
    # frames than the file holds, which vLLM refuses: the count is raised to what is sent.
    total = max(frames.frame_count, len(frames.indices))
    return len(frames.indices), frames.video_fps, frames.indices, total, frames.duration_s
