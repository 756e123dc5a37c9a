"""Image geometry and token counts of Llama 4 (llama4: Llama-4-Scout and -Maverick).

The image processor picks a canvas of `size` tiles (336 x 336 published), at most
`max_patches` of them (16 published), for the whole image: among every rows x cols grid of at
most that many tiles, the one that needs the least upscaling, or if none fits without
shrinking, the least shrinking (the scale a canvas allows is the smaller of its two side
ratios); ties go to the smallest canvas, then to the first in the processor's own order.
The image is resized into the canvas without distortion and padded, cut into tiles, and, when
there is more than one tile, also resized whole into one more, global, tile. It computes these
scales in float32 (torch), so Loupe does too, bit for bit.

Each tile is `(336 / patch_size)^2 / 4` = 144 `<|patch|>` tokens (patches of 14, pixel
shuffle at ratio 0.5). The prompt's `<|image|>` becomes `<|image_start|>`, then for a canvas
of rows x cols > 1 each row's tiles' patches separated by `<|tile_x_separator|>` and ended by
a `<|tile_y_separator|>`, then `<|image|>` and the global tile's patches (the only tile's
patches, for one tile), then `<|image_end|>`: tokens = 3 + 144, plus 145 per tile when
there are several.

`detail` (Loupe's product decisions), passed as processor overrides on the original image:

- `high` or omitted: as configured (16 tiles and the global one published: 2,467 tokens).
- `low`: one tile, the whole image (`max_patches=1`): 147 tokens.
- `auto`: `high` if within the budget; else the largest `max_patches` below the configured
  one whose tokens are within the budget (`max_patches=m`); else `low`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.errors import ModelLoadError
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, OverrideValue, check_not_empty

# The class defaults of transformers' Llama 4 image processor and processor.
_HF_TILE = 336
_HF_MAX_PATCHES = 16
_HF_PATCH_SIZE = 14
_HF_PIXEL_SHUFFLE_RATIO = 0.5

Canvas = tuple[int, int]
"""(height, width) in pixels, whole tiles."""


@dataclass(frozen=True, slots=True)
class Llama4Settings:
    """The settings that decide tokens. Defaults: Llama-4-Scout-17B-16E-Instruct as published."""

    tile: int = 336
    max_patches: int = 16
    resize_to_max_canvas: bool = False
    patch_size: int = 14
    pixel_shuffle_ratio: float = 0.5

    @property
    def tile_tokens(self) -> int:
        """`<|patch|>` tokens of one tile, as `Llama4Processor` counts them."""
        downsample = int(round(1.0 / self.pixel_shuffle_ratio**2))
        return (self.tile // self.patch_size) ** 2 // downsample

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Llama4Settings:
        """Read settings as `Llama4Processor` and its image processor do; absent keys take their
        class defaults. The image processor refuses a `size` that is not square."""
        height = cfg.edge(config, "size", "height", _HF_TILE)
        width = cfg.edge(config, "size", "width", _HF_TILE)
        if height != width:
            raise ModelLoadError(f"Processor setting 'size' must be square, got {height}x{width}.")
        ratio = config.get("pixel_shuffle_ratio", _HF_PIXEL_SHUFFLE_RATIO)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
            raise ModelLoadError(
                f"Processor setting 'pixel_shuffle_ratio' must be in (0, 1], got {ratio!r}."
            )
        return cls(
            tile=height,
            max_patches=cfg.positive_int(config, "max_patches", _HF_MAX_PATCHES),
            resize_to_max_canvas=cfg.flag(config, "resize_to_max_canvas", False),
            patch_size=cfg.positive_int(config, "patch_size", _HF_PATCH_SIZE),
            pixel_shuffle_ratio=float(ratio),
        )


LLAMA4_PUBLISHED = Llama4Settings()


def f32(value: float) -> float:
    """`value` rounded to the nearest float32 (ties to even), as torch stores it.

    A float32 division or product of values exact in float32 equals its double result rounded
    once to float32 (double carries more than twice float32's precision)."""
    if value == 0 or not math.isfinite(value):
        return value
    mantissa, exponent = math.frexp(value)
    return math.ldexp(round(mantissa * 2**24), exponent - 24)


def canvases(max_patches: int, tile: int) -> list[Canvas]:
    """Every canvas of at most `max_patches` tiles, in the processor's order: grids grouped by
    aspect ratio, the ratios in the order they first appear from the most tiles down, each
    group's grids in that same order."""
    by_ratio: dict[float, list[Canvas]] = {}
    for count in range(max_patches, 0, -1):
        for rows in sorted(d for d in range(1, count + 1) if count % d == 0):
            by_ratio.setdefault(rows / (count // rows), []).append((rows, count // rows))
    return [(rows * tile, cols * tile) for grids in by_ratio.values() for rows, cols in grids]


def best_canvas(height: int, width: int, max_patches: int, settings: Llama4Settings) -> Canvas:
    """The canvas the processor picks for an image of `height` x `width` (`get_best_fit`)."""
    options = canvases(max_patches, settings.tile)
    scales = [min(f32(h / height), f32(w / width)) for h, w in options]
    larger = [s for s in scales if s >= 1]
    if larger:
        chosen = max(larger) if settings.resize_to_max_canvas else min(larger)
    else:
        chosen = max(scales)
    tied = [canvas for canvas, scale in zip(options, scales, strict=True) if scale == chosen]
    return min(tied, key=lambda canvas: canvas[0] * canvas[1])  # the first of the smallest


def fitted_size(height: int, width: int, canvas: Canvas, settings: Llama4Settings) -> Canvas:
    """The (height, width) the processor resizes the image to, before padding it to `canvas`.

    Without `resize_to_max_canvas`, it enlarges an image no further than one tile's side. Its
    arithmetic mixes torch (float32) and Python (double) numbers: a side bound taken from the
    canvas is a tensor, so the scale derived from it is float32; one from the image is not."""
    bounds: list[tuple[float, bool]] = []
    for side, limit in ((height, canvas[0]), (width, canvas[1])):
        if settings.resize_to_max_canvas:
            bounds.append((limit, True))
        else:
            floor = max(side, settings.tile)
            bounds.append((limit, True) if limit < floor else (floor, False))
    (bound_h, tensor_h), (bound_w, tensor_w) = bounds
    scale_h = f32(bound_h / height) if tensor_h else bound_h / height
    scale_w = f32(bound_w / width) if tensor_w else bound_w / width
    as_f32 = tensor_h or tensor_w
    if (f32(scale_w) < f32(scale_h)) if as_f32 else (scale_w < scale_h):
        product = f32(height * scale_w) if tensor_w else height * scale_w
        fitted = (min(math.floor(product), int(bound_h)), int(bound_w))
    else:
        product = f32(width * scale_h) if tensor_h else width * scale_h
        fitted = (int(bound_h), min(math.floor(product), int(bound_w)))
    return max(fitted[0], 1), max(fitted[1], 1)


def tiles(height: int, width: int, max_patches: int, settings: Llama4Settings) -> int:
    """Tiles of the image's canvas, plus the global tile when there are several."""
    canvas_height, canvas_width = best_canvas(height, width, max_patches, settings)
    count = (canvas_height // settings.tile) * (canvas_width // settings.tile)
    return count + 1 if count > 1 else 1


def image_tokens(tile_count: int, settings: Llama4Settings) -> int:
    """The image's prompt tokens: patches, separators, `<|image|>` and the two ends."""
    patches = settings.tile_tokens
    if tile_count == 1:
        return 3 + patches
    return 3 + patches + (tile_count - 1) * (patches + 1)


@dataclass(frozen=True, slots=True)
class Llama4Rules:
    """The Llama 4 rules."""

    family: str = "llama4"
    reference: Llama4Settings = LLAMA4_PUBLISHED

    def published(self) -> Llama4Settings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> Llama4Settings:
        return Llama4Settings.from_config(config)

    def plan(
        self, width: int, height: int, detail: Detail | None, settings: Llama4Settings, budget: int
    ) -> ImagePlan:
        check_not_empty(width, height)
        if detail is Detail.LOW:
            return _plan(Detail.LOW, height, width, 1, settings, (("max_patches", 1),))
        high = _plan(detail or Detail.HIGH, height, width, settings.max_patches, settings, ())
        if detail is not Detail.AUTO or high.tokens <= budget:
            return high
        for max_patches in range(settings.max_patches - 1, 1, -1):
            plan = _plan(
                Detail.AUTO, height, width, max_patches, settings, (("max_patches", max_patches),)
            )
            if plan.tokens <= budget:
                return plan
        return _plan(Detail.AUTO, height, width, 1, settings, (("max_patches", 1),))


def _plan(
    detail: Detail,
    height: int,
    width: int,
    max_patches: int,
    settings: Llama4Settings,
    overrides: tuple[tuple[str, OverrideValue], ...],
) -> ImagePlan:
    """The plan under `overrides`; its geometry is the canvas the processor tiles."""
    canvas_height, canvas_width = best_canvas(height, width, max_patches, settings)
    count = (canvas_height // settings.tile) * (canvas_width // settings.tile)
    tile_count = count + 1 if count > 1 else 1
    return ImagePlan(
        detail, canvas_width, canvas_height, image_tokens(tile_count, settings), overrides
    )
