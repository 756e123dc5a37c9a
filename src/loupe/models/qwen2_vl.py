"""Image geometry and token counts of the Qwen-VL families (Qwen2-VL, Qwen2.5-VL, Qwen3-VL).

The processor resizes each image with `smart_resize`: both sides to multiples of
`factor = patch_size * merge_size`, the area within [min_pixels, max_pixels], the aspect ratio
kept as closely as it can. The image then becomes (h / factor) * (w / factor) `<|image_pad|>`
tokens. Loupe resizes images itself to a size the processor leaves unchanged, so what it plans
is exactly what the model sees. See docs/image-tokens.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import InvalidImageSize, ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, check_not_empty
from loupe.models.resize import (
    check_aspect_ratio,
    planned,
    round_to_grid,
    settle,
)


# The class defaults of transformers' Qwen2VLImageProcessor, which apply to keys a config lacks.
_HF_MIN_PIXELS = 56 * 56
_HF_MAX_PIXELS = 28 * 28 * 1280
_HF_PATCH_SIZE = 14
_HF_MERGE_SIZE = 2


@dataclass(frozen=True, slots=True)
class QwenSettings:
    """The processor settings that decide geometry. Defaults: Qwen2-VL-7B-Instruct as published."""

    min_pixels: int = 3136
    max_pixels: int = 12845056
    patch_size: int = 14
    merge_size: int = 2

    def __post_init__(self) -> None:
        if self.min_pixels > self.max_pixels:
            raise ModelLoadError(
                f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})."
            )
        if self.max_pixels < self.factor**2:
            raise ModelLoadError(f"max_pixels must be at least {self.factor**2}: one token.")

    @property
    def factor(self) -> int:
        """The side of one image token in pixels: both resized sides are multiples of it."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> QwenSettings:
        """Read settings as `Qwen2VLImageProcessor(**config)` does: `min_pixels`/`max_pixels`
        override `size.shortest_edge`/`size.longest_edge`; absent keys take the class defaults."""
        min_pixels = cfg.edge(config, "size", "shortest_edge", _HF_MIN_PIXELS)
        max_pixels = cfg.edge(config, "size", "longest_edge", _HF_MAX_PIXELS)
        return cls(
            min_pixels=cfg.positive_int(config, "min_pixels", min_pixels),
            max_pixels=cfg.positive_int(config, "max_pixels", max_pixels),
            patch_size=cfg.positive_int(config, "patch_size", _HF_PATCH_SIZE),
            merge_size=cfg.positive_int(config, "merge_size", _HF_MERGE_SIZE),
        )


QWEN2_VL_PUBLISHED = QwenSettings()
QWEN3_VL_PUBLISHED = QwenSettings(min_pixels=65536, max_pixels=16777216, patch_size=16)
"""Qwen3-VL-*-Instruct: size {shortest_edge 65536, longest_edge 16777216}, patch 16, merge 2."""


def smart_resize(height: int, width: int, settings: QwenSettings) -> tuple[int, int]:
    """The processor's own resize rule, float for float, without its aspect-ratio check."""
    factor, low, high = settings.factor, settings.min_pixels, settings.max_pixels
    return round_to_grid(height, width, factor, low, high)


def settled_size(height: int, width: int, settings: QwenSettings) -> tuple[int, int]:
    """`smart_resize` repeated until the processor would leave the result as it is.

    One pass suffices unless the area bounds are tight for the aspect ratio (shrinking to
    max_pixels clamps the short side to one factor, or the min_pixels rounding overshoots
    max_pixels); then Loupe hands over the settled size, which the processor keeps, rather than
    one it would shrink again. Raises `InvalidImageSize` where no size settles or the processor
    would refuse the settled size's aspect ratio.
    """
    size = settle(height, width, lambda h, w: smart_resize(h, w, settings))
    if size is None:
        raise InvalidImageSize(
            f"An image of {width}x{height} cannot be sized within this model's pixel limits."
        )
    check_aspect_ratio(*size)
    return size


@dataclass(frozen=True, slots=True)
class QwenRules:
    """The Qwen-VL rules for one family name, with that family's published settings."""

    family: str
    reference: QwenSettings

    def published(self) -> QwenSettings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> QwenSettings:
        return QwenSettings.from_config(config)

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: QwenSettings, budget: int
    ) -> ImagePlan:
        check_not_empty(width, height)
        check_aspect_ratio(height, width)
        high = settled_size(height, width, settings)
        return planned(detail, (height, width), high, settings, budget, settled_size)
