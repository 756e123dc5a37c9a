"""Image geometry and token counts of GLM-4.1V (`glm4v`), by the rules of its image processor.

The processor resizes like Qwen-VL, with two differences: a side shorter than one token
(`factor = patch_size * merge_size` pixels) first grows, the aspect ratio kept, until both reach
it; and the pixel bounds count the image twice over, as the temporal pair of frames it becomes
(`temporal_patch_size * h * w` within [min_pixels, max_pixels]). The image then becomes
(h / factor) * (w / factor) `<|image|>` tokens. Loupe resizes images itself to a size the
processor leaves unchanged, so what it plans is exactly what the model sees.
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


# The class defaults of transformers' Glm4vImageProcessor, which apply to keys a config lacks.
_HF_MIN_PIXELS = 112 * 112
_HF_MAX_PIXELS = 28 * 28 * 15000
_HF_PATCH_SIZE = 14
_HF_MERGE_SIZE = 2
_HF_TEMPORAL_PATCH_SIZE = 2


@dataclass(frozen=True, slots=True)
class Glm4vSettings:
    """The processor settings that decide geometry. Defaults: GLM-4.1V-9B-Thinking as published
    (`size` {shortest_edge 12544, longest_edge 9633792}, patch 14, merge 2, temporal patch 2)."""

    min_pixels: int = 12544
    max_pixels: int = 9633792
    patch_size: int = 14
    merge_size: int = 2
    temporal_patch_size: int = 2

    def __post_init__(self) -> None:
        if self.min_pixels > self.max_pixels:
            raise ModelLoadError(
                f"size.shortest_edge ({self.min_pixels}) must not exceed "
                f"size.longest_edge ({self.max_pixels})."
            )
        one_token = self.temporal_patch_size * self.factor**2
        if self.max_pixels < one_token:
            raise ModelLoadError(f"size.longest_edge must be at least {one_token}: one token.")

    @property
    def factor(self) -> int:
        """The side of one image token in pixels: both resized sides are multiples of it."""
        return self.patch_size * self.merge_size

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Glm4vSettings:
        """Read settings as `Glm4vImageProcessor(**config)` does: the bounds are `size`'s
        `shortest_edge`/`longest_edge` (it has no `min_pixels`/`max_pixels` keys); absent keys
        take the class defaults."""
        return cls(
            min_pixels=cfg.edge(config, "size", "shortest_edge", _HF_MIN_PIXELS),
            max_pixels=cfg.edge(config, "size", "longest_edge", _HF_MAX_PIXELS),
            patch_size=cfg.positive_int(config, "patch_size", _HF_PATCH_SIZE),
            merge_size=cfg.positive_int(config, "merge_size", _HF_MERGE_SIZE),
            temporal_patch_size=cfg.positive_int(
                config, "temporal_patch_size", _HF_TEMPORAL_PATCH_SIZE
            ),
        )


GLM4V_PUBLISHED = Glm4vSettings()


def grown(height: int, width: int, settings: Glm4vSettings) -> tuple[int, int]:
    """The processor's first step: a side below one factor grows both, float for float."""
    factor = settings.factor
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        return int(height * scale), int(width * scale)
    return height, width


def smart_resize(height: int, width: int, settings: Glm4vSettings) -> tuple[int, int]:
    """The processor's own resize rule for one image, without its aspect-ratio check."""
    factor, low, high = settings.factor, settings.min_pixels, settings.max_pixels
    height, width = grown(height, width, settings)
    return round_to_grid(height, width, factor, low, high, frames=settings.temporal_patch_size)


def settled_size(height: int, width: int, settings: Glm4vSettings) -> tuple[int, int]:
    """`smart_resize` repeated until the processor would leave the result as it is.

    One pass suffices unless the bounds are tight for the aspect ratio; then Loupe hands over
    the settled size, which the processor keeps. Raises `InvalidImageSize` where the processor
    would refuse the image (its aspect ratio once grown) or the settled size, or none settles.
    """
    check_aspect_ratio(*grown(height, width, settings), named=(height, width))
    size = settle(height, width, lambda h, w: smart_resize(h, w, settings))
    if size is None:
        raise InvalidImageSize(
            f"An image of {width}x{height} cannot be sized within this model's pixel limits."
        )
    check_aspect_ratio(*size, named=(height, width))
    return size


@dataclass(frozen=True, slots=True)
class Glm4vRules:
    """The GLM-4.1V rules for one family name, with that family's published settings."""

    family: str
    reference: Glm4vSettings

    def published(self) -> Glm4vSettings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> Glm4vSettings:
        return Glm4vSettings.from_config(config)

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: Glm4vSettings, budget: int
    ) -> ImagePlan:
        check_not_empty(width, height)
        high = settled_size(height, width, settings)
        return planned(detail, (height, width), high, settings, budget, settled_size)
