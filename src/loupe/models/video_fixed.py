"""Video rules of the families whose frames have one fixed size: LLaVA-OneVision and SmolVLM.

LLaVA-OneVision (`LlavaOnevisionVideoProcessor`) resizes every frame to one tile (384 x 384)
and pools its features 2 x 2: each frame is ceil(p / 2)^2 `<video>` tokens (p = 27 a side:
196), plus one newline token for the video. SmolVLM (`SmolVLMVideoProcessor`) resizes each
frame to its `max_image_size` square and never splits it: every frame is the image's global
view, `image_seq_len` `<image>` tokens inside `<fake_token_around_image><global-img>` ...
`<fake_token_around_image>`. `detail` changes nothing: frames are always this low-detail view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.video import Sampling, VideoPlan, VideoShape


@dataclass(frozen=True, slots=True)
class OnevisionVideoSettings:
    """Defaults: llava-onevision-qwen2-*-ov-hf (384 x 384 frames, 729 tokens per tile)."""

    frame_height: int = 384
    frame_width: int = 384
    num_image_tokens: int = 729

    @property
    def frame_tokens(self) -> int:
        return math.ceil(math.isqrt(self.num_image_tokens) / 2) ** 2


@dataclass(frozen=True, slots=True)
class OnevisionVideoRules:
    """`default_sample_indices_fn` (`arange(n) * total // n`) then one pooled tile per frame."""

    family: str = "llava-onevision"

    def settings(self, config: Mapping[str, Any]) -> OnevisionVideoSettings:
        return OnevisionVideoSettings(
            frame_height=cfg.edge(config, "size", "height", 384),
            frame_width=cfg.edge(config, "size", "width", 384),
            num_image_tokens=cfg.positive_int(config, "num_image_tokens", 729),
        )

    def default_sampling(self, settings: OnevisionVideoSettings) -> tuple[float | None, int]:
        return None, 768

    def plan(
        self, shape: VideoShape, sampling: Sampling, detail: Detail | None, settings: OnevisionVideoSettings, budget: int
    ) -> VideoPlan:
        total = shape.frame_count
        n = min(max(1, int(total / shape.fps * sampling.fps)), sampling.max_frames, total)
        indices = tuple(i * total // n for i in range(n))
        tokens = n * settings.frame_tokens + 1
        return VideoPlan(indices, settings.frame_width, settings.frame_height, Detail.LOW, tokens)


@dataclass(frozen=True, slots=True)
class SmolvlmVideoSettings:
    """Defaults: SmolVLM-256M-Instruct (`video_sampling` fps 1, 64 frames; 512 px frames)."""

    fps: float = 1.0
    max_frames: int = 64
    frame_edge: int = 512
    image_seq_len: int = 64


@dataclass(frozen=True, slots=True)
class SmolvlmVideoRules:
    """`SmolVLMVideoProcessor.sample_frames`: round(fps x duration) frames (at most `max_frames`),
    spread by `linspace` over the video less a second at each end when it is long enough, as
    integers, duplicates dropped."""

    family: str = "smolvlm"

    def settings(self, config: Mapping[str, Any]) -> SmolvlmVideoSettings:
        sampling = cfg.section(config, "video_sampling")
        fps = sampling.get("fps", 1)
        if isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0:
            raise ModelLoadError(f"Processor setting 'video_sampling.fps' must be a positive number, got {fps!r}.")
        return SmolvlmVideoSettings(
            fps=float(fps),
            max_frames=cfg.positive_int(sampling, "max_frames", 64),
            frame_edge=cfg.edge(config, "max_image_size", "longest_edge", 364),
            image_seq_len=cfg.positive_int(config, "image_seq_len", 169),
        )

    def default_sampling(self, settings: SmolvlmVideoSettings) -> tuple[float | None, int]:
        return settings.fps, settings.max_frames

    def plan(
        self, shape: VideoShape, sampling: Sampling, detail: Detail | None, settings: SmolvlmVideoSettings, budget: int
    ) -> VideoPlan:
        indices = smolvlm_indices(shape, sampling.fps, sampling.max_frames)
        tokens = len(indices) * (settings.image_seq_len + 3)
        return VideoPlan(tuple(indices), settings.frame_edge, settings.frame_edge, Detail.LOW, tokens)


def smolvlm_indices(shape: VideoShape, fps: float, most: int, skip_secs: int = 1) -> list[int]:
    total, duration = shape.frame_count, shape.duration_s
    desired = max(min(int(round(fps * duration)), most), 1)
    start, end = 0, total - 1
    if skip_secs > 0 and duration - 2 * skip_secs > most * fps:
        start, end = int(skip_secs * shape.fps), int(total - skip_secs * shape.fps)
    start, end = max(0, start), min(end, total - 1)
    if start >= end:
        start, end = 0, total - 1
    if desired == 1:
        return [start]
    step = (end - start) / (desired - 1)
    values = [int(start + i * step) for i in range(desired - 1)] + [end]
    return sorted(set(values))
