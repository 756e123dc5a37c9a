"""Image geometry and token counts of LLaVA-OneVision (llava-hf/llava-onevision-*-hf).

A prompt's only image goes through "anyres": the processor picks the grid pinpoint that keeps
most of the image's resolution (`select_best_resolution`), cuts that canvas into tiles of
`size` and adds the whole image resized to one tile (the base). Tokens, per
`LlavaOnevisionProcessor._get_number_of_features`, with `n = num_image_tokens` (729: SigLIP
384 / 14 = 27 a side) and `p = sqrt(n)`:

- the grid is rows x cols tiles: a feature map of (rows * p) x (cols * p);
- "unpadding" removes the rows (or columns) that the letterboxing of the image into the canvas
  left empty, computed from the original size with the processor's own rounding;
- `anyres_max_N` then shrinks a map larger than 1.1 x N tiles: both sides divided by
  `sqrt(h * w / (N * p * p))` and floored;
- tokens = h * w (the map) + h (one newline token per row) + n (the base), less one when
  `vision_feature_select_strategy` is "default". Every one is an `<image>` token.

Published (0.5b-ov): tiles 384, pinpoints 384..2304 a side (6 x 6), 729 tokens, anyres_max_9,
"full". 570 x 380 takes 1 x 2 tiles, a 27 x 54 map unpadded to 27 x 40: 1,836 tokens;
1920 x 1080 takes 3 x 5 tiles, 81 x 135 unpadded to 75 x 135, shrunk to 60 x 108: 7,269.

A plan's `resized_width` x `resized_height` is the image as handed to the processor: the
original, or the downscale Loupe makes (`loupe_resizes`).

`detail` (Loupe's product decisions):

- `high` or omitted: anyres as configured, on the original image.
- `low`: the base image plus the smallest anyres (one tile). The processor has no per-image
  switch for "base only" (it skips anyres only for prompts with several images, and its token
  count ignores a per-call `image_grid_pinpoints`), so Loupe downscales the image, keeping its
  aspect ratio, to fit one tile; the processor then picks the single-tile grid. An image that
  already fits is passed as is. At most 2 n + p tokens (1,485 published).
- `auto`: `high` if within the budget; else the largest of the image's downscales that exactly
  fit one of the grid pinpoints whose tokens are within the budget; else `low`.

Multi-image prompts: the processor then gives EVERY image of the prompt the base alone,
n + 1 tokens (730 published), whatever its size or detail; `plan_all` says so, and reports
such images as `low` (the base is the low-detail view).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, ImageRequest, check_not_empty

Pinpoint = tuple[int, int]
"""A (height, width) canvas the processor may tile an image onto."""

PUBLISHED_PINPOINTS: tuple[Pinpoint, ...] = tuple(
    (384 * rows, 384 * cols) for rows in range(1, 7) for cols in range(1, 7)
)
"""The image processor's class default, and llava-onevision-*-ov-hf's published grid."""

# The ratio by which a feature map may exceed anyres_max_N tiles before it is shrunk.
_SHRINK_ABOVE = 1.1


@dataclass(frozen=True, slots=True)
class OnevisionSettings:
    """The settings that decide tokens. Defaults: llava-onevision-qwen2-0.5b-ov-hf."""

    tile_height: int = 384
    tile_width: int = 384
    pinpoints: tuple[Pinpoint, ...] = PUBLISHED_PINPOINTS
    num_image_tokens: int = 729
    max_tiles: int = 9
    drops_first_token: bool = False

    def __post_init__(self) -> None:
        if not self.pinpoints:
            raise ModelLoadError("Processor setting 'image_grid_pinpoints' must not be empty.")

    @property
    def features_per_side(self) -> int:
        return math.isqrt(self.num_image_tokens)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OnevisionSettings:
        """Read settings as `LlavaOnevisionProcessor` and its image processor do.

        `num_image_tokens` has no usable default (the processor cannot count without it).
        """
        if config.get("num_image_tokens") is None:
            raise ModelLoadError("Processor setting 'num_image_tokens' is required for OneVision.")
        strategy = config.get("vision_feature_select_strategy")
        if strategy not in (None, "default", "full"):
            raise ModelLoadError(
                "Processor setting 'vision_feature_select_strategy' must be 'default' or 'full', "
                f"got {strategy!r}."
            )
        return cls(
            tile_height=cfg.edge(config, "size", "height", 384),
            tile_width=cfg.edge(config, "size", "width", 384),
            pinpoints=_pinpoints(config.get("image_grid_pinpoints")),
            num_image_tokens=cfg.positive_int(config, "num_image_tokens", 729),
            max_tiles=_max_tiles(config.get("vision_aspect_ratio", "anyres_max_9")),
            drops_first_token=strategy == "default",
        )


ONEVISION_PUBLISHED = OnevisionSettings()


def _pinpoints(value: object) -> tuple[Pinpoint, ...]:
    if value is None:
        return PUBLISHED_PINPOINTS
    if not isinstance(value, Sequence) or not all(_is_pinpoint(p) for p in value):
        raise ModelLoadError(
            "Processor setting 'image_grid_pinpoints' must be a list of [height, width] pairs of "
            f"positive integers, got {value!r}."
        )
    return tuple((int(p[0]), int(p[1])) for p in value)


def _is_pinpoint(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    )


def _max_tiles(value: object) -> int:
    """N of "anyres_max_N", read as the processor does (it strips those letters off the ends)."""
    digits = value.strip("anyres_max_") if isinstance(value, str) else ""
    if not digits.isdigit() or int(digits) < 1:
        raise ModelLoadError(
            f"Processor setting 'vision_aspect_ratio' must be 'anyres_max_N', got {value!r}."
        )
    return int(digits)


def best_resolution(height: int, width: int, pinpoints: Sequence[Pinpoint]) -> Pinpoint:
    """`select_best_resolution`: the pinpoint keeping most pixels, then wasting fewest."""
    best = pinpoints[0]
    most_kept, least_wasted = 0, math.inf
    for canvas_height, canvas_width in pinpoints:
        scale = min(canvas_width / width, canvas_height / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        wasted = canvas_width * canvas_height - kept
        if kept > most_kept or (kept == most_kept and wasted < least_wasted):
            best, most_kept, least_wasted = (canvas_height, canvas_width), kept, wasted
    return best


def image_tokens(height: int, width: int, settings: OnevisionSettings) -> int:
    """Tokens of a prompt's only image, of `height` x `width`, float for float as the processor."""
    rows_px, cols_px = best_resolution(height, width, settings.pinpoints)
    side = settings.features_per_side
    map_height = side * (rows_px // settings.tile_height)
    map_width = side * (cols_px // settings.tile_width)
    if width / height > map_width / map_height:
        padding = (map_height - int(round(height * (map_width / width), 7))) // 2
        map_height -= 2 * padding
    else:
        padding = (map_width - int(round(width * (map_height / height), 7))) // 2
        map_width -= 2 * padding
    features, newlines = map_height * map_width, map_height
    ratio = math.sqrt(map_height * map_width / (settings.max_tiles * side**2))
    if ratio > _SHRINK_ABOVE:
        features = int(map_height // ratio) * int(map_width // ratio)
        newlines = int(map_height // ratio)
    return features + newlines + settings.num_image_tokens - int(settings.drops_first_token)


@dataclass(frozen=True, slots=True)
class OnevisionRules:
    """The LLaVA-OneVision rules."""

    family: str = "llava-onevision"
    reference: OnevisionSettings = ONEVISION_PUBLISHED

    def published(self) -> OnevisionSettings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> OnevisionSettings:
        return OnevisionSettings.from_config(config)

    def plan(
        self,
        width: int,
        height: int,
        detail: Detail | None,
        settings: OnevisionSettings,
        budget: int,
    ) -> ImagePlan:
        check_not_empty(width, height)
        fit = (settings.tile_height, settings.tile_width)
        if detail is Detail.LOW:
            return _plan(Detail.LOW, height, width, _fitted(height, width, *fit), settings)
        high = _plan(detail or Detail.HIGH, height, width, (height, width), settings)
        if detail is not Detail.AUTO or high.tokens <= budget:
            return high
        candidates = [_fitted(height, width, *canvas) for canvas in settings.pinpoints]
        candidates.sort(key=lambda size: size[0] * size[1], reverse=True)
        for size in candidates:
            if image_tokens(*size, settings) <= budget:
                return _plan(Detail.AUTO, height, width, size, settings)
        return _plan(Detail.AUTO, height, width, _fitted(height, width, *fit), settings)


    def plan_all(
        self, images: Sequence[ImageRequest], settings: OnevisionSettings, budget: int
    ) -> list[ImagePlan]:
        if len(images) == 1:
            return [self.plan(*images[0], settings, budget)]
        base = settings.num_image_tokens + 1 - (1 if settings.drops_first_token else 0)
        plans = []
        for width, height, _detail in images:
            check_not_empty(width, height)
            plans.append(ImagePlan(Detail.LOW, settings.tile_width, settings.tile_height, base))
        return plans


def _fitted(height: int, width: int, box_height: int, box_width: int) -> tuple[int, int]:
    """(height, width) scaled down, aspect kept, to fit the box; unchanged if it fits already.

    The side that meets the box takes the box's length; the other rounds half up.
    """
    if height <= box_height and width <= box_width:
        return height, width
    if width * box_height >= height * box_width:
        return max(1, (2 * height * box_width + width) // (2 * width)), box_width
    return box_height, max(1, (2 * width * box_height + height) // (2 * height))


def _plan(
    detail: Detail, height: int, width: int, size: tuple[int, int], settings: OnevisionSettings
) -> ImagePlan:
    """The plan for the image handed over at `size` (Loupe resizes when it differs)."""
    resized_height, resized_width = size
    return ImagePlan(
        detail,
        resized_width,
        resized_height,
        image_tokens(resized_height, resized_width, settings),
        loupe_resizes=size != (height, width),
    )
