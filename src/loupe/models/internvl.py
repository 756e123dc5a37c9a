"""Image geometry and token counts of InternVL (OpenGVLab/InternVL3-*-hf, model type internvl).

`InternVLProcessor` always asks its image processor (GotOcr2) to crop to patches, whatever the
checkpoint's `crop_to_patches` says. The image processor picks, among the rows x cols grids of
`min_patches` to `max_patches` tiles, the one whose aspect ratio is closest to the image's (ties
go to the larger grid while the image's area exceeds half of the grid's), resizes the image onto
it and cuts tiles of `size` (448 x 448 published); a grid of more than one tile also gets the
whole image as a thumbnail tile. With `max_patches` 1 or cropping off, the image is one tile.
Each tile is `image_seq_length` `<IMG_CONTEXT>` tokens (256: 448 / 14 = 32 patches a side,
pixel-shuffled by 0.5), and the image is wrapped in `<img>` ... `</img>`:
tokens = 2 + 256 x tiles. The template's "\\n" after the image is its own text.

`detail` (Loupe's product decisions), all passed as processor overrides on the original image:

- `high` or omitted: tiling as configured (up to `max_patches`, 12 published: 3,330 tokens).
- `low`: one tile, the whole image (`crop_to_patches=False`): 258 tokens.
- `auto`: `high` if within the budget; else the largest `max_patches` below the configured one
  whose tokens are within the budget (`max_patches=m`); else `low`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loupe.domain import Detail
from loupe.models import config as cfg
from loupe.models.geometry import ImagePlan, OverrideValue, check_not_empty

# The class defaults of transformers' GotOcr2 image processor and InternVL processor.
_HF_TILE = 384
_HF_IMAGE_SEQ_LENGTH = 256


@dataclass(frozen=True, slots=True)
class InternVLSettings:
    """The processor settings that decide tokens. Defaults: InternVL3-1B-hf as published."""

    tile_height: int = 448
    tile_width: int = 448
    min_patches: int = 1
    max_patches: int = 12
    image_seq_length: int = 256

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InternVLSettings:
        """Read settings as the processor does; absent keys take its class defaults (tiles of
        384, 1 to 12 patches, 256 tokens a tile). `crop_to_patches` is not read: the processor
        overrides it."""
        return cls(
            tile_height=cfg.edge(config, "size", "height", _HF_TILE),
            tile_width=cfg.edge(config, "size", "width", _HF_TILE),
            min_patches=cfg.positive_int(config, "min_patches", 1),
            max_patches=cfg.positive_int(config, "max_patches", 12),
            image_seq_length=cfg.positive_int(config, "image_seq_length", _HF_IMAGE_SEQ_LENGTH),
        )


INTERNVL_PUBLISHED = InternVLSettings()


def tiled_grid(
    height: int, width: int, settings: InternVLSettings, max_patches: int
) -> tuple[int, int]:
    """`get_optimal_tiled_canvas`: (cols, rows) of the grid, float for float."""
    low, high = settings.min_patches, max_patches
    grids = sorted(
        ((c, r) for c in range(1, high + 1) for r in range(1, high + 1) if low <= c * r <= high),
        key=lambda grid: grid[0] * grid[1],
    )
    aspect_ratio, area = width / height, width * height
    tile_area = settings.tile_height * settings.tile_width
    best, best_diff = (1, 1), float("inf")
    for cols, rows in grids:
        diff = abs(aspect_ratio - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * tile_area * cols * rows:
            best = (cols, rows)
    return best


def grid(height: int, width: int, settings: InternVLSettings, max_patches: int) -> tuple[int, int]:
    """(cols, rows) the processor tiles the image into; (1, 1) when it does not tile."""
    return tiled_grid(height, width, settings, max_patches) if max_patches > 1 else (1, 1)


def image_tokens(cols: int, rows: int, settings: InternVLSettings) -> int:
    """`<img>`, `image_seq_length` `<IMG_CONTEXT>` per tile (a grid of several adds the
    thumbnail), `</img>`."""
    tile_count = cols * rows + 1 if cols * rows > 1 else 1
    return 2 + settings.image_seq_length * tile_count


@dataclass(frozen=True, slots=True)
class InternVLRules:
    """The InternVL rules."""

    family: str = "internvl"
    reference: InternVLSettings = INTERNVL_PUBLISHED

    def published(self) -> InternVLSettings:
        return self.reference

    def settings(self, config: Mapping[str, Any]) -> InternVLSettings:
        return InternVLSettings.from_config(config)

    def plan(
        self,
        width: int,
        height: int,
        detail: Detail | None,
        settings: InternVLSettings,
        budget: int,
    ) -> ImagePlan:
        check_not_empty(width, height)
        if detail is Detail.LOW:
            return _plan(Detail.LOW, (1, 1), settings, (("crop_to_patches", False),))
        layout = grid(height, width, settings, settings.max_patches)
        high = _plan(detail or Detail.HIGH, layout, settings, ())
        if detail is not Detail.AUTO or high.tokens <= budget:
            return high
        for max_patches in range(settings.max_patches - 1, 1, -1):
            layout = grid(height, width, settings, max_patches)
            plan = _plan(Detail.AUTO, layout, settings, (("max_patches", max_patches),))
            if plan.tokens <= budget:
                return plan
        return _plan(Detail.AUTO, (1, 1), settings, (("crop_to_patches", False),))


def _plan(
    detail: Detail,
    layout: tuple[int, int],
    settings: InternVLSettings,
    overrides: tuple[tuple[str, OverrideValue], ...],
) -> ImagePlan:
    """The plan under `overrides`; its geometry is the grid's canvas (one tile when untiled)."""
    cols, rows = layout
    return ImagePlan(
        detail,
        cols * settings.tile_width,
        rows * settings.tile_height,
        image_tokens(cols, rows, settings),
        overrides,
    )
