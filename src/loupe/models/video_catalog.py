"""Which families take video, and one model's video counter bound to its checkpoint's settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from loupe.domain import Detail
from loupe.errors import VideoNotSupported
from loupe.models.video import Sampling, VideoPlan, VideoRules, VideoShape, resolve_sampling
from loupe.models.video_fixed import OnevisionVideoRules, SmolvlmVideoRules
from loupe.models.video_qwen import (
    GLM4V_VIDEO,
    QWEN2_VL_VIDEO,
    QWEN3_VL_VIDEO,
    GridVideoRules,
    glm4v_indices,
    qwen2_indices,
    qwen3_indices,
)

VIDEO_FAMILIES: Mapping[str, VideoRules[Any]] = MappingProxyType(
    {
        "qwen2-vl": GridVideoRules("qwen2-vl", QWEN2_VL_VIDEO, qwen2_indices),
        "qwen2.5-vl": GridVideoRules("qwen2.5-vl", QWEN2_VL_VIDEO, qwen2_indices),
        "qwen3-vl": GridVideoRules("qwen3-vl", QWEN3_VL_VIDEO, qwen3_indices),
        "glm4v": GridVideoRules("glm4v", GLM4V_VIDEO, glm4v_indices),
        "llava-onevision": OnevisionVideoRules(),
        "smolvlm": SmolvlmVideoRules(),
    }
)
"""The families whose processors take video, by the name `/v1/models` reports."""

WITH_IMAGES = frozenset({"qwen2-vl", "qwen2.5-vl", "qwen3-vl"})
"""Families whose requests may hold images and videos together. The others read both alike:
SmolVLM's video frames are images to its model (one `pixel_values`), LLaVA-OneVision encodes a
request's images together, and GLM-4V's video frames are image placeholders, which its model
(transformers' reference) cannot tell from images."""


@dataclass(frozen=True, slots=True)
class VideoCounter:
    """One served model's video accounting: its family's rules, its settings, its limits."""

    rules: VideoRules[Any]
    settings: Any
    budget: int
    max_frames: int

    @property
    def family(self) -> str:
        return self.rules.family

    @property
    def with_images(self) -> bool:
        """Whether a request may hold images beside its videos."""
        return self.family in WITH_IMAGES

    def sampling(self, fps: float | None, max_frames: int | None) -> Sampling:
        return resolve_sampling(fps, max_frames, self.rules.default_sampling(self.settings), self.max_frames)

    def plan(self, shape: VideoShape, fps: float | None, max_frames: int | None, detail: Detail | None) -> VideoPlan:
        """The frames to decode and their tokens; raises as `VideoRules.plan` and
        `resolve_sampling` do."""
        return self.rules.plan(shape, self.sampling(fps, max_frames), detail, self.settings, self.budget)


def video_counter_for(
    family: str,
    video_config: Mapping[str, Any],
    *,
    budget: int,
    max_frames: int,
    processor_config: Mapping[str, Any] | None = None,
) -> VideoCounter | None:
    """The video counter of a checkpoint of `family` from its video processor's configuration
    (and the processor's own plain settings, such as SmolVLM's `image_seq_len`), or None where
    the family takes no video. Raises ModelLoadError for a bad setting."""
    rules = VIDEO_FAMILIES.get(family)
    if rules is None:
        return None
    plain = {k: v for k, v in (processor_config or {}).items() if not isinstance(v, Mapping)}
    return VideoCounter(rules, rules.settings({**plain, **video_config}), budget, max_frames)


def refuse_video(model: str, family: str) -> VideoNotSupported:
    """The refusal for a video sent to a model whose family takes none."""
    takes = ", ".join(sorted(VIDEO_FAMILIES))
    return VideoNotSupported(
        f"model {model!r} ({family}) does not take video input; families that do: {takes}", param="messages"
    )
